// The Python binding: converts arrays and strings, releases the GIL, and
// nothing else. Validation lives in pyvae/, arithmetic in vae.h.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <string>

#include "binding_util.h"
#include "impute.h"
#include "vae.h"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace py = pybind11;
using namespace pyvae;

namespace {

using namespace pyvae::binding;

template <class T>
void bind_model(py::module_& m, const char* name) {
    using M = Model<T>;
    py::class_<M>(m, name)
        .def(py::init([](int n_features, int n_components, std::vector<int> hidden, std::string activation,
                         std::string likelihood, std::string kl, std::string posterior, std::string estimator,
                         int n_mc_samples, double beta, bool missing, double variance_floor, int n_threads) {
                 auto model = std::make_unique<M>(make_config(n_features, n_components, std::move(hidden), activation,
                                                              likelihood, kl, posterior, estimator, n_mc_samples,
                                                              beta, missing, variance_floor));
                 model->n_threads = std::max(1, n_threads);
                 return model;
             }),
             py::arg("n_features"), py::arg("n_components"), py::arg("hidden_layer_sizes"), py::arg("activation"),
             py::arg("likelihood"), py::arg("kl"), py::arg("posterior"), py::arg("gradient_estimator"),
             py::arg("n_mc_samples"), py::arg("beta"), py::arg("missing"), py::arg("variance_floor") = 0.0, py::arg("n_threads") = 1)
        .def_property_readonly("n_params", &M::n_params)
        .def_readwrite("n_threads", &M::n_threads)
        .def("layout", [](const M& self) { return describe_layout(self.layout); })
        .def("init_params", [](const M& self, uint64_t seed) {
            py::array_t<T> params(self.n_params());
            self.init_params(params.mutable_data(), seed);
            return params;
        })
        .def("loss_and_grad", [](const M& self, In<T> params, In<T> x_obs, In<T> x_enc, In<T> noise, double baseline) {
            // The training objective and its gradient on one batch with given noise (S, N, Z).
            const int N = int(x_obs.shape(0)), S = self.config.n_mc_samples, Z = self.config.n_components;
            check_cols(x_obs, self.config.n_features, "x_obs");
            check_cols(x_enc, self.config.n_features, "x_enc");
            if (params.size() != self.n_params() || x_enc.shape(0) != N || noise.size() != int64_t(S) * N * Z)
                throw std::invalid_argument("params, x_enc or noise has the wrong size");
            py::array_t<T> grad(self.n_params());
            Workspace<T> ws;
            BatchStats st;
            double loss;
            {
                py::gil_scoped_release nogil;
                loss = self.loss_and_grad(params.data(), grad.mutable_data(), x_obs.data(), x_enc.data(),
                                          noise.data(), N, baseline, ws, &st);
            }
            auto per_draw = [&](const std::vector<double>& v) {
                py::array_t<double> a({int64_t(S), int64_t(N)});
                std::copy(v.begin(), v.begin() + int64_t(S) * N, a.mutable_data());
                return a;
            };
            py::dict out;
            out["loss"] = loss;
            out["grad"] = grad;
            out["recon"] = per_draw(ws.recon);      // (S, N) log p(x_i | z_si)
            out["kl_draws"] = per_draw(ws.kl);      // (S, N) log q(z_si | x_i) - log p(z_si)
            py::array_t<double> kl_analytic(N);
            std::copy(ws.kl_analytic.begin(), ws.kl_analytic.begin() + N, kl_analytic.mutable_data());
            if (self.config.kl == KLMode::analytic) out["kl_analytic"] = kl_analytic;  // (N)
            out["mean_signal"] = st.mean_f;
            return out;
        }, py::arg("params"), py::arg("x_obs"), py::arg("x_enc"), py::arg("noise"), py::arg("baseline") = 0.0)
        .def("adam_update", [](const M& self, py::array_t<T> params, In<T> grad, py::array_t<T> m, py::array_t<T> v,
                               int64_t step, double learning_rate, double beta1, double beta2, double epsilon,
                               double alpha) {
            const int64_t P = self.n_params();
            if (grad.size() != P) throw std::invalid_argument("grad has the wrong size");
            self.adam_update(writable(params, P, "params"), grad.data(), writable(m, P, "m"), writable(v, P, "v"), step,
                             AdamSettings{learning_rate, beta1, beta2, epsilon, alpha});
        })
        .def("train_epoch", [](const M& self, py::array_t<T> params, py::array_t<T> m, py::array_t<T> v, int64_t step,
                               double baseline, In<T> X, py::array_t<int64_t, py::array::c_style | py::array::forcecast> rows,
                               int batch_size, uint64_t seed, double learning_rate, double beta1, double beta2,
                               double epsilon, double alpha, py::object allreduce, int64_t first_row) {
            const int64_t P = self.n_params();
            T* p = writable(params, P, "params");
            T* mm = writable(m, P, "m");
            T* vv = writable(v, P, "v");
            check_cols(X, self.config.n_features, "X");
            // Data parallel: rows are global and X holds rows [first_row, first_row + len(X)).
            const bool parallel = !allreduce.is_none();
            const int64_t* r = rows.data();
            for (py::ssize_t k = 0; k < rows.size(); ++k)
                if (r[k] < 0 || (!parallel && r[k] >= X.shape(0))) throw std::out_of_range("row index out of range");
            if (first_row < 0 || (!parallel && first_row != 0)) throw std::invalid_argument("bad first_row");
            DataParallel<T> dp{first_row, int64_t(X.shape(0)), nullptr};
            if (parallel)
                dp.allreduce = [&allreduce](T* buffer, int64_t size) {
                    // allreduce(buffer) sums a NumPy view of the buffer in place over all ranks.
                    py::gil_scoped_acquire gil;
                    allreduce(py::array_t<T>(size, buffer, py::capsule(buffer, [](void*) {})));
                };
            AdamSettings adam{learning_rate, beta1, beta2, epsilon, alpha};
            EpochResult res;
            {
                py::gil_scoped_release nogil;
                // Ctrl-C with several ranks: the Python hook raises the stop flag, which
                // travels with the gradient, so every rank stops after the same step.
                res = parallel ? self.train_epoch(p, mm, vv, &step, &baseline, X.data(), r, rows.size(), batch_size,
                                                  seed, adam, nullptr, &dp)
                               : self.train_epoch(p, mm, vv, &step, &baseline, X.data(), r, rows.size(), batch_size,
                                                  seed, adam, python_interrupted);
            }
            if (res.status == EpochStatus::interrupted) {
                if (!PyErr_Occurred()) PyErr_SetNone(PyExc_KeyboardInterrupt);
                throw py::error_already_set();
            }
            py::dict out;
            out["finite"] = res.status != EpochStatus::non_finite;
            out["elbo"] = res.elbo;
            out["recon"] = res.recon;
            out["kl"] = res.kl;
            out["n_rows"] = res.n_rows;
            out["step"] = step;
            out["baseline"] = baseline;
            return out;
        }, py::arg("params"), py::arg("m"), py::arg("v"), py::arg("step"), py::arg("baseline"), py::arg("X"),
           py::arg("rows"), py::arg("batch_size"), py::arg("seed"), py::arg("learning_rate"), py::arg("beta1"),
           py::arg("beta2"), py::arg("epsilon"), py::arg("alpha"), py::arg("allreduce") = py::none(),
           py::arg("first_row") = 0)
        .def("encode", [](const M& self, In<T> params, In<T> X) {
            check_cols(X, self.config.n_features, "X");
            const int64_t N = X.shape(0);
            py::array_t<T> mu({N, int64_t(self.config.n_components)}), lv({N, int64_t(self.config.n_components)});
            {
                py::gil_scoped_release nogil;
                self.encode(params.data(), X.data(), N, mu.mutable_data(), lv.mutable_data());
            }
            return py::make_tuple(mu, lv);
        })
        .def("decode", [](const M& self, In<T> params, In<T> Z) {
            check_cols(Z, self.config.n_components, "Z");
            const int64_t N = Z.shape(0);
            py::array_t<T> out({N, int64_t(self.config.n_features)});
            {
                py::gil_scoped_release nogil;
                self.decode(params.data(), Z.data(), N, out.mutable_data());
            }
            return out;
        })
        .def("score", [](const M& self, In<T> params, In<T> X, int n_draws, bool importance, uint64_t seed) {
            check_cols(X, self.config.n_features, "X");
            const int64_t N = X.shape(0);
            py::array_t<double> out(N);
            {
                py::gil_scoped_release nogil;
                self.score(params.data(), X.data(), N, n_draws, importance, seed, out.mutable_data(),
                           python_interrupted);
            }
            if (PyErr_Occurred()) throw py::error_already_set();
            return out;
        })
        .def("impute", [](const M& self, In<T> params, In<T> X, int n_draws, uint64_t seed) {
            // X with its NaN entries replaced by importance-weighted conditional means (impute.h).
            check_cols(X, self.config.n_features, "X");
            if (params.size() != self.n_params()) throw std::invalid_argument("params has the wrong size");
            const int64_t N = X.shape(0);
            py::array_t<T> out({N, int64_t(self.config.n_features)});
            {
                py::gil_scoped_release nogil;
                impute_forward(self, params.data(), X.data(), N, n_draws, seed, out.mutable_data(),
                               python_interrupted);
            }
            if (PyErr_Occurred()) throw py::error_already_set();
            return out;
        }, py::arg("params"), py::arg("X"), py::arg("n_draws"), py::arg("seed"))
        .def("sample_imputations", [](const M& self, In<T> params, In<T> X, int n_draws, int n_imputations,
                                      uint64_t seed) {
            // (N, n_imputations, D) draws of the missing entries by importance resampling (impute.h).
            check_cols(X, self.config.n_features, "X");
            if (params.size() != self.n_params()) throw std::invalid_argument("params has the wrong size");
            if (n_imputations < 1) throw std::invalid_argument("n_imputations must be >= 1");
            const int64_t N = X.shape(0);
            py::array_t<T> out({N, int64_t(n_imputations), int64_t(self.config.n_features)});
            {
                py::gil_scoped_release nogil;
                sample_imputations_forward(self, params.data(), X.data(), N, n_draws, n_imputations, seed,
                                           out.mutable_data(), python_interrupted);
            }
            if (PyErr_Occurred()) throw py::error_already_set();
            return out;
        }, py::arg("params"), py::arg("X"), py::arg("n_draws"), py::arg("n_imputations"), py::arg("seed"))
        .def("sample_prior", [](const M& self, int64_t n, uint64_t seed) {
            py::array_t<T> z({n, int64_t(self.config.n_components)});
            self.sample_prior(n, seed, z.mutable_data());
            return z;
        })
        .def("sample_observations", [](const M& self, In<T> params, In<T> Z, uint64_t seed) {
            check_cols(Z, self.config.n_components, "Z");
            const int64_t N = Z.shape(0);
            py::array_t<T> out({N, int64_t(self.config.n_features)});
            {
                py::gil_scoped_release nogil;
                self.sample_observations(params.data(), Z.data(), N, seed, out.mutable_data());
            }
            return out;
        })
        .def("sample_posterior", [](const M& self, In<T> params, In<T> X, int n_samples, uint64_t seed) {
            check_cols(X, self.config.n_features, "X");
            const int64_t N = X.shape(0);
            py::array_t<T> out({int64_t(n_samples), N, int64_t(self.config.n_components)});
            {
                py::gil_scoped_release nogil;
                self.sample_posterior(params.data(), X.data(), N, n_samples, seed, out.mutable_data());
            }
            return out;
        });
}

}  // namespace

PYBIND11_MODULE(_core, m) {
    m.doc() = "pyvae's C++ core: the VAE's forward and backward passes, Adam, and the epoch loop.";
    bind_model<float>(m, "Model32");
    bind_model<double>(m, "Model64");
    py::register_exception_translator([](std::exception_ptr p) {
        try {
            if (p) std::rethrow_exception(p);
        } catch (const std::out_of_range& e) {
            PyErr_SetString(PyExc_IndexError, e.what());
        }
    });
    py::dict config;
#ifdef _OPENMP
    config["openmp"] = true;
    config["max_threads"] = omp_get_max_threads();
#else
    config["openmp"] = false;
    config["max_threads"] = 1;
#endif
#ifdef PYVAE_OPENBLAS
    config["blas"] = "scipy-openblas32";
#else
    config["blas"] = "none (naive loops)";
#endif
    config["dtypes"] = py::make_tuple("float32", "float64");
    m.attr("build_config") = config;
}
