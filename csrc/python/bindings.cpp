// The Python binding of the CPU core: the engine interface of bind_engine.h
// for Model<float> and Model<double>, and the build's configuration.
// Validation lives in pyvae/, arithmetic in the core's headers (vae.h).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <string>

#include "python/bind_conditional.h"
#include "python/bind_engine.h"
#include "model/impute.h"
#include "python/kernels_binding.h"
#include "cpu/scan.h"
#include "vae.h"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace py = pybind11;

namespace pyvae {

// The CPU engine's adapters for bind_engine (see there).
template <class T>
std::unique_ptr<Model<T>> make_engine(Model<T>*, const Config& config, int n_threads, const py::kwargs& options) {
    binding::refuse_options(options, "the CPU engine");
    auto model = std::make_unique<Model<T>>(config);
    model->n_threads = n_threads;
    return model;
}

template <class T>
binding::LossTerms engine_loss_and_grad(const Model<T>& self, const T* params, T* grad, const T* x_obs,
                                        const T* x_enc, const T* noise, int N, double baseline) {
    Workspace<T> ws;
    BatchStats st;
    binding::LossTerms t;
    t.loss = self.loss_and_grad(params, grad, x_obs, x_enc, noise, N, baseline, ws, &st);
    const int64_t SN = int64_t(self.config.n_mc_samples) * N;
    t.recon.assign(ws.recon.begin(), ws.recon.begin() + SN);
    t.kl.assign(ws.kl.begin(), ws.kl.begin() + SN);
    t.kl_analytic.assign(ws.kl_analytic.begin(), ws.kl_analytic.begin() + N);
    t.mean_f = st.mean_f;
    return t;
}

template <class T>
void engine_prepare_epoch(const Model<T>&, const binding::In<T>&, bool) {}

template <class T>
EpochResult engine_train_epoch(const Model<T>& self, T* params, T* m, T* v, int64_t* step, double* baseline,
                               const T* X, const int64_t* rows, int64_t n_rows, int batch_size, uint64_t seed,
                               const AdamSettings& adam, const DataParallel<T>* dp) {
    // Ctrl-C with several ranks: the Python hook raises the stop flag, which
    // travels with the gradient, so every rank stops after the same step.
    if (dp) return self.train_epoch(params, m, v, step, baseline, X, rows, n_rows, batch_size, seed, adam, nullptr, dp);
    return self.train_epoch(params, m, v, step, baseline, X, rows, n_rows, batch_size, seed, adam,
                            binding::python_interrupted);
}

// Importance-weighted imputation (impute.h), CPU only.
template <class T>
void bind_imputation(py::class_<Model<T>>& cls) {
    using binding::In;
    cls.def("impute", [](const Model<T>& self, In<T> params, In<T> X, int n_draws, uint64_t seed, int refine_steps,
                         double refine_rate, int refine_draws) {
           // X with its NaN entries replaced by importance-weighted conditional means.
           binding::check_cols(X, self.config.n_features, "X");
           if (params.size() != self.n_params()) throw std::invalid_argument("params has the wrong size");
           const int64_t N = X.shape(0);
           const Refinement refine = binding::make_refinement(refine_steps, refine_rate, refine_draws);
           py::array_t<T> out({N, int64_t(self.config.n_features)});
           {
               py::gil_scoped_release nogil;
               impute_forward(self, params.data(), X.data(), N, n_draws, seed, out.mutable_data(),
                              binding::python_interrupted, refine);
           }
           if (PyErr_Occurred()) throw py::error_already_set();
           return out;
       }, py::arg("params"), py::arg("X"), py::arg("n_draws"), py::arg("seed"), py::arg("refine_steps") = 0,
          py::arg("refine_rate") = Refinement().rate, py::arg("refine_draws") = Refinement().draws)
        .def("sample_imputations", [](const Model<T>& self, In<T> params, In<T> X, int n_draws, int n_imputations,
                                      uint64_t seed, int refine_steps, double refine_rate, int refine_draws) {
            // (N, n_imputations, D) draws of the missing entries by importance resampling.
            binding::check_cols(X, self.config.n_features, "X");
            if (params.size() != self.n_params()) throw std::invalid_argument("params has the wrong size");
            if (n_imputations < 1) throw std::invalid_argument("n_imputations must be >= 1");
            const int64_t N = X.shape(0);
            const Refinement refine = binding::make_refinement(refine_steps, refine_rate, refine_draws);
            py::array_t<T> out({N, int64_t(n_imputations), int64_t(self.config.n_features)});
            {
                py::gil_scoped_release nogil;
                sample_imputations_forward(self, params.data(), X.data(), N, n_draws, n_imputations, seed,
                                           out.mutable_data(), binding::python_interrupted, refine);
            }
            if (PyErr_Occurred()) throw py::error_already_set();
            return out;
        }, py::arg("params"), py::arg("X"), py::arg("n_draws"), py::arg("n_imputations"), py::arg("seed"),
           py::arg("refine_steps") = 0,
           py::arg("refine_rate") = Refinement().rate, py::arg("refine_draws") = Refinement().draws)
        .def("head_elbo_gradient", [](const Model<T>& self, In<T> params, In<T> X, In<T> head, In<T> noise) {
            // (elbo (N), d_head (N, 2Z)): each row's ELBO with the draws of noise (S, N, Z) and
            // d(-ELBO)/d head, the gradient refine_posterior follows (for the tests).
            binding::check_cols(X, self.config.n_features, "X");
            const int N = int(X.shape(0)), Z = self.config.n_components;
            if (params.size() != self.n_params() || head.size() != int64_t(N) * 2 * Z || N < 1 ||
                noise.size() % (int64_t(N) * Z) != 0 || noise.size() == 0)
                throw std::invalid_argument("params, head or noise has the wrong size");
            const int S = int(noise.size() / (int64_t(N) * Z));
            Workspace<T> ws;
            ws.reserve(self.config, self.layout, N, S);
            py::array_t<double> elbo(N);
            py::array_t<T> d_head({N, 2 * Z});
            self.head_elbo_backward(params.data(), self.decoder_transposes(params.data()), X.data(), N, S, head.data(),
                                    noise.data(), elbo.mutable_data(), ws);
            std::copy(ws.d_head.begin(), ws.d_head.begin() + int64_t(N) * 2 * Z, d_head.mutable_data());
            return py::make_tuple(elbo, d_head);
        }, py::arg("params"), py::arg("X"), py::arg("head"), py::arg("noise"));
}

}  // namespace pyvae

PYBIND11_MODULE(_core, m) {
    using namespace pyvae;
    if (!kIsa.error.empty()) throw py::import_error("pyvae: " + kIsa.error + " (dispatch.h)");
    m.doc() = "pyvae's C++ core: the VAE's forward and backward passes, Adam, and the epoch loop.";
    binding::bind_adam_settings(m);
    auto model32 = binding::bind_engine<Model<float>, float>(m, "Model32",
                                                             "The VAE on the CPU, float32 (training and inference).");
    auto model64 = binding::bind_engine<Model<double>, double>(m, "Model64",
                                                               "The VAE on the CPU, float64 (gradient checks).");
    bind_imputation(model32);
    bind_imputation(model64);
    binding::bind_conditional<float>(m, "ConditionalModel32",
                                     "The VAE with arbitrary conditioning on the CPU, float32 (VAEImputer's model).");
    binding::bind_conditional<double>(m, "ConditionalModel64",
                                      "The VAE with arbitrary conditioning on the CPU, float64 (gradient checks).");
    binding::bind_kernels(m);
    // (n_nan, n_inf, min, max) of a contiguous array's values in one pass, min and
    // max over the values that are not NaN (VAE._validate_X).
    auto scan = [](auto x, int n_threads) {
        ValueScan s;
        {
            py::gil_scoped_release nogil;
            s = value_scan(x.data(), x.size(), n_threads);
        }
        return py::make_tuple(s.n_nan, s.n_inf, s.lo, s.hi);
    };
    using Flat32 = py::array_t<float, py::array::c_style>;
    using Flat64 = py::array_t<double, py::array::c_style>;
    m.def("value_scan", [=](Flat32 x, int n_threads) { return scan(x, n_threads); }, py::arg("x").noconvert(),
          py::arg("n_threads") = 1);
    m.def("value_scan", [=](Flat64 x, int n_threads) { return scan(x, n_threads); }, py::arg("x").noconvert(),
          py::arg("n_threads") = 1);
    binding::register_index_error();
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
    // The kernel OpenBLAS picked for this CPU (or OPENBLAS_CORETYPE pinned): it decides the rounding.
    config["blas_kernel"] = std::string(scipy_openblas_get_corename());
#else
    config["blas"] = "none (naive loops)";
    config["blas_kernel"] = "none";
#endif
    // The instruction set the elementwise kernels run (dispatch.h; PYVAE_ISA may lower
    // it) and the best this CPU offers.
    config["elementwise_isa"] = elementwise_isa();
    config["cpu_isa"] = PYVAE_DISPATCH_ISA ? isa_name(kIsa.cpu) : elementwise_isa();
    config["dtypes"] = py::make_tuple("float32", "float64");
    config["build_type"] = PYVAE_BUILD_TYPE;
    m.attr("build_config") = config;
    m.attr("__version__") = PYVAE_VERSION;
}
