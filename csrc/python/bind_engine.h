// The Python interface of an engine, written once for both: Model<T> of the
// CPU core (bindings.cpp) and ModelCuda of the CUDA engine
// (cuda/bindings_cuda.cpp). Each engine brings three adapters, found by
// overload on its type, for the calls whose C++ signatures differ:
//   make_engine(Config, n_threads, kwargs)  builds it (kwargs: engine options);
//   engine_loss_and_grad(...)               returns LossTerms;
//   engine_prepare_epoch(self, X)           with the GIL (the GPU binds X there);
//   engine_train_epoch(...)                 runs one epoch without the GIL, and
//                                           refuses what the engine does not support.
// Like the rest of the binding it converts and releases the GIL, nothing else.
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <memory>
#include <string>
#include <vector>

#include "python/binding_util.h"

namespace pyvae::binding {

// The outputs of one loss_and_grad call, whatever the engine.
struct LossTerms {
    double loss = 0, mean_f = 0;
    std::vector<double> recon, kl;  // (S*N) per draw
    std::vector<double> kl_analytic;  // (N)
};

using Rows = py::array_t<int64_t, py::array::c_style | py::array::forcecast>;

template <class M, class T>
py::class_<M> bind_engine(py::module_& m, const char* name, const char* doc) {
    py::class_<M> cls(m, name, doc);
    cls.def(py::init([](int n_features, int n_components, std::vector<int> hidden, std::string activation,
                        std::string likelihood, std::string kl, std::string posterior, std::string estimator,
                        int n_mc_samples, double beta, bool missing, double variance_floor,
                        std::vector<std::pair<std::string, int>> columns, std::vector<double> encoder_shift,
                        std::vector<double> encoder_scale, std::string objective, int n_threads,
                        py::kwargs options) {
                return make_engine(static_cast<M*>(nullptr),
                                   make_config(n_features, n_components, std::move(hidden), activation, likelihood,
                                               kl, posterior, estimator, n_mc_samples, beta, missing, variance_floor,
                                               columns, std::move(encoder_shift), std::move(encoder_scale),
                                               objective),
                                   std::max(1, n_threads), options);
            }),
            py::arg("n_features"), py::arg("n_components"), py::arg("hidden_layer_sizes"), py::arg("activation"),
            py::arg("likelihood"), py::arg("kl"), py::arg("posterior"), py::arg("gradient_estimator"),
            py::arg("n_mc_samples"), py::arg("beta"), py::arg("missing"), py::arg("variance_floor") = 0.0,
            py::arg("columns") = std::vector<std::pair<std::string, int>>(),
            py::arg("encoder_shift") = std::vector<double>(), py::arg("encoder_scale") = std::vector<double>(),
            py::arg("objective") = "elbo", py::arg("n_threads") = 1)
        .def_property_readonly("n_params", &M::n_params)
        .def_readwrite("n_threads", &M::n_threads)
        .def("layout", [](const M& self) { return describe_layout(self.layout); })
        .def_property_readonly("posterior_std_per_scale",
                               [](const M& self) { return standardized_std(self.config.posterior); },
                               "Standard deviation of a posterior draw per unit of its scale exp(logvar / 2).")
        .def("score_block_rows", [](const M&, int n_draws) { return M::chunk_rows(n_draws); },
             "Rows score() computes together with n_draws draws each: slices of whole blocks score the same.")
        .def("init_params", [](const M& self, uint64_t seed) {
            py::array_t<T> params(self.n_params());
            self.init_params(params.mutable_data(), seed);
            return params;
        })
        .def("loss_and_grad", [](M& self, In<T> params, In<T> x_obs, In<T> x_enc, In<T> noise, double baseline) {
            // The training objective and its gradient on one batch with given noise (S, N, Z).
            const int N = int(x_obs.shape(0)), S = self.config.n_mc_samples, Z = self.config.n_components;
            check_cols(x_obs, self.config.n_features, "x_obs");
            check_cols(x_enc, self.config.n_features, "x_enc");
            if (params.size() != self.n_params() || x_enc.shape(0) != N || noise.size() != int64_t(S) * N * Z)
                throw std::invalid_argument("params, x_enc or noise has the wrong size");
            if (N < 1) throw std::invalid_argument("loss_and_grad needs at least one row");
            py::array_t<T> grad(self.n_params());
            LossTerms t;
            {
                py::gil_scoped_release nogil;
                t = engine_loss_and_grad(self, params.data(), grad.mutable_data(), x_obs.data(), x_enc.data(),
                                         noise.data(), N, baseline);
            }
            auto array = [](const std::vector<double>& v, std::vector<py::ssize_t> shape) {
                py::array_t<double> a(shape);
                std::copy(v.begin(), v.begin() + a.size(), a.mutable_data());
                return a;
            };
            py::dict out;
            out["loss"] = t.loss;  // objective iwae: minus the rows' mean importance-weighted bound
            out["grad"] = grad;
            out["recon"] = array(t.recon, {S, N});     // (S, N) log p(x_i | z_si)
            out["kl_draws"] = array(t.kl, {S, N});     // (S, N) log q(z_si | x_i) - log p(z_si)
            if (self.config.kl == KLMode::analytic) out["kl_analytic"] = array(t.kl_analytic, {N});
            out["mean_signal"] = t.mean_f;
            return out;
        }, py::arg("params"), py::arg("x_obs"), py::arg("x_enc"), py::arg("noise"), py::arg("baseline") = 0.0)
        .def("adam_update", [](M& self, py::array_t<T> params, In<T> grad, py::array_t<T> m, py::array_t<T> v,
                               int64_t step, const AdamSettings& adam) {
            const int64_t P = self.n_params();
            if (grad.size() != P) throw std::invalid_argument("grad has the wrong size");
            self.adam_update(writable(params, P, "params"), grad.data(), writable(m, P, "m"), writable(v, P, "v"), step,
                             adam);
        }, py::arg("params"), py::arg("grad"), py::arg("m"), py::arg("v"), py::arg("step"), py::arg("adam"))
        .def("train_epoch", [](M& self, py::array_t<T> params, py::array_t<T> m, py::array_t<T> v, int64_t step,
                               double baseline, In<T> X, Rows rows, int batch_size, uint64_t seed,
                               const AdamSettings& adam, py::object allreduce, int64_t first_row) {
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
            if (batch_size < 1) throw std::invalid_argument("batch_size must be >= 1");
            DataParallel<T> dp{first_row, int64_t(X.shape(0)), nullptr};
            if (parallel)
                dp.allreduce = [&allreduce](T* buffer, int64_t size) {
                    // allreduce(buffer) sums a NumPy view of the buffer in place over all ranks.
                    py::gil_scoped_acquire gil;
                    allreduce(py::array_t<T>(size, buffer, py::capsule(buffer, [](void*) {})));
                };
            engine_prepare_epoch(self, X, parallel);
            EpochResult res;
            {
                py::gil_scoped_release nogil;
                res = engine_train_epoch(self, p, mm, vv, &step, &baseline, X.data(), r, rows.size(), batch_size,
                                         seed, adam, parallel ? &dp : nullptr);
            }
            if (res.status == EpochStatus::interrupted) {
                // pybind11 refuses to raise error_already_set with no Python error set.
                if (!PyErr_Occurred()) PyErr_SetNone(PyExc_KeyboardInterrupt);
                throw py::error_already_set();
            }
            py::dict out;
            out["finite"] = res.status != EpochStatus::non_finite;
            out["elbo"] = res.elbo;
            out["recon"] = res.recon;
            out["kl"] = res.kl;
            out["n_rows"] = res.n_rows;
            out["team_steps"] = res.team_steps;
            if (self.config.objective == Objective::iwae) out["bound"] = res.bound;  // the IWAE bound trained on
            if (!res.mu_sum.empty()) {  // the sums behind active_units_ (an engine may not keep them)
                out["mu_sum"] = py::array_t<double>(int64_t(res.mu_sum.size()), res.mu_sum.data());
                out["mu_sq_sum"] = py::array_t<double>(int64_t(res.mu_sq_sum.size()), res.mu_sq_sum.data());
                out["mu_rows"] = res.mu_rows;
            }
            out["step"] = step;
            out["baseline"] = baseline;
            return out;
        }, py::arg("params"), py::arg("m"), py::arg("v"), py::arg("step"), py::arg("baseline"), py::arg("X"),
           py::arg("rows"), py::arg("batch_size"), py::arg("seed"), py::arg("adam"), py::arg("allreduce") = py::none(),
           py::arg("first_row") = 0)
        .def("encode", [](M& self, In<T> params, In<T> X) {
            check_cols(X, self.config.n_features, "X");
            const int64_t N = X.shape(0);
            py::array_t<T> mu({N, int64_t(self.config.n_components)}), lv({N, int64_t(self.config.n_components)});
            {
                py::gil_scoped_release nogil;
                self.encode(params.data(), X.data(), N, mu.mutable_data(), lv.mutable_data());
            }
            return py::make_tuple(mu, lv);
        })
        .def("decode", [](M& self, In<T> params, In<T> Z) {
            check_cols(Z, self.config.n_components, "Z");
            const int64_t N = Z.shape(0);
            py::array_t<T> out({N, int64_t(self.config.n_features)});
            {
                py::gil_scoped_release nogil;
                self.decode(params.data(), Z.data(), N, out.mutable_data());
            }
            return out;
        })
        .def("score", [](M& self, In<T> params, In<T> X, int n_draws, bool importance, uint64_t seed,
                         int refine_steps, double refine_rate, int refine_draws) {
            check_cols(X, self.config.n_features, "X");
            const Refinement refine = make_refinement(refine_steps, refine_rate, refine_draws);
            const int64_t N = X.shape(0);
            py::array_t<double> out(N);
            {
                py::gil_scoped_release nogil;
                self.score(params.data(), X.data(), N, n_draws, importance, seed, out.mutable_data(),
                           python_interrupted, refine);
            }
            if (PyErr_Occurred()) throw py::error_already_set();
            return out;
        }, py::arg("params"), py::arg("X"), py::arg("n_draws"), py::arg("importance"), py::arg("seed"),
           py::arg("refine_steps") = 0, py::arg("refine_rate") = Refinement().rate,
           py::arg("refine_draws") = Refinement().draws)
        .def("sample_prior", [](M& self, int64_t n, uint64_t seed) {
            py::array_t<T> z({n, int64_t(self.config.n_components)});
            {
                py::gil_scoped_release nogil;
                self.sample_prior(n, seed, z.mutable_data());
            }
            return z;
        })
        .def("sample_observations", [](M& self, In<T> params, In<T> Z, uint64_t seed) {
            check_cols(Z, self.config.n_components, "Z");
            const int64_t N = Z.shape(0);
            py::array_t<T> out({N, int64_t(self.config.n_features)});
            {
                py::gil_scoped_release nogil;
                self.sample_observations(params.data(), Z.data(), N, seed, out.mutable_data());
            }
            return out;
        })
        .def("sample_posterior", [](M& self, In<T> params, In<T> X, int n_samples, uint64_t seed) {
            check_cols(X, self.config.n_features, "X");
            const int64_t N = X.shape(0);
            py::array_t<T> out({int64_t(n_samples), N, int64_t(self.config.n_components)});
            {
                py::gil_scoped_release nogil;
                self.sample_posterior(params.data(), X.data(), N, n_samples, seed, out.mutable_data());
            }
            return out;
        });
    return cls;
}

// Adam's settings (model/config.h) as one Python object, for both modules:
// _core.AdamSettings(learning_rate=..., alpha=...), the moment decays and
// epsilon defaulting to the struct's own. The module loaded first registers the
// type and the other names it, so either engine takes the object either makes.
inline void bind_adam_settings(py::module_& m) {
    if (const auto* registered = py::detail::get_type_info(typeid(AdamSettings))) {
        m.attr("AdamSettings") = py::handle(reinterpret_cast<PyObject*>(registered->type));
        return;
    }
    const AdamSettings defaults;
    py::class_<AdamSettings>(m, "AdamSettings",
                             "Adam's step size, moment decays beta1 and beta2, epsilon, and alpha, the L2 decay "
                             "of the weight matrices: what train_epoch and adam_update take.")
        .def(py::init([](double learning_rate, double beta1, double beta2, double epsilon, double alpha) {
                 return AdamSettings{learning_rate, beta1, beta2, epsilon, alpha};
             }),
             py::kw_only(), py::arg("learning_rate"), py::arg("beta1") = defaults.beta1,
             py::arg("beta2") = defaults.beta2, py::arg("epsilon") = defaults.epsilon,
             py::arg("alpha") = defaults.alpha)
        .def_readonly("learning_rate", &AdamSettings::learning_rate)
        .def_readonly("beta1", &AdamSettings::beta1)
        .def_readonly("beta2", &AdamSettings::beta2)
        .def_readonly("epsilon", &AdamSettings::epsilon)
        .def_readonly("alpha", &AdamSettings::alpha)
        .def("__repr__", [](const AdamSettings& a) {
            return py::str("AdamSettings(learning_rate={!r}, beta1={!r}, beta2={!r}, epsilon={!r}, alpha={!r})")
                .format(a.learning_rate, a.beta1, a.beta2, a.epsilon, a.alpha);
        });
}

// The translation of std::out_of_range to IndexError, for both modules.
inline void register_index_error() {
    py::register_exception_translator([](std::exception_ptr p) {
        try {
            if (p) std::rethrow_exception(p);
        } catch (const std::out_of_range& e) {
            PyErr_SetString(PyExc_IndexError, e.what());
        }
    });
}

// Engine options a factory did not take: refused by name.
inline void refuse_options(const py::kwargs& options, const char* engine) {
    for (const auto& item : options)
        throw py::type_error(std::string(engine) + " takes no option '" + py::str(item.first).cast<std::string>() +
                             "'");
}

}  // namespace pyvae::binding
