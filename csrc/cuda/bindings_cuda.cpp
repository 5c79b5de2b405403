// The CUDA extension `pyvae._cuda_core`: ModelCuda with the Python interface of
// _core.Model32, the device's status, and `kernels`, a bench that runs each
// `_cuda` kernel and its CPU twin on the same inputs (for tests).
// Like bindings.cpp it only converts; it imports on a machine without a GPU and
// reports why none can be used instead of failing.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <memory>
#include <string>

#include "python/bind_engine.h"
#include "model_cuda.h"

namespace py = pybind11;
using namespace pyvae;

namespace {

using namespace pyvae::binding;
using Arr = In<float>;

// (usable, reason, device count): never raises.
py::tuple cuda_status() {
    int count = 0;
    const cudaError_t e = cudaGetDeviceCount(&count);
    if (e == cudaErrorInsufficientDriver)
        return py::make_tuple(false, std::string("no usable NVIDIA driver: libcuda.so.1 is missing or older than the "
                                                 "CUDA ") + std::to_string(CUDART_VERSION / 1000) + "." +
                                     std::to_string(CUDART_VERSION % 1000 / 10) +
                                     " runtime this build needs (" + cudaGetErrorString(e) + ")",
                              0);
    if (e == cudaErrorNoDevice || (e == cudaSuccess && count == 0))
        return py::make_tuple(false, std::string("no CUDA device found (the driver sees no GPU; check "
                                                 "CUDA_VISIBLE_DEVICES)"),
                              0);
    if (e != cudaSuccess)
        return py::make_tuple(false, std::string("CUDA is not usable: ") + cudaGetErrorString(e), 0);
    return py::make_tuple(true, std::string(""), count);
}

py::list device_names() {
    py::list names;
    int count = 0;
    if (cudaGetDeviceCount(&count) != cudaSuccess) return names;
    for (int d = 0; d < count; ++d) {
        cudaDeviceProp prop;
        if (cudaGetDeviceProperties(&prop, d) == cudaSuccess)
            names.append(std::string(prop.name) + " (sm_" + std::to_string(prop.major) + std::to_string(prop.minor) +
                         ", " + std::to_string(prop.totalGlobalMem >> 20) + " MiB)");
    }
    return names;
}

// The model as Python sees it: ModelCuda plus a reference to the array whose
// copy is on the device, so its address cannot be reused by another array.
struct PyModelCuda : ModelCuda {
    using ModelCuda::ModelCuda;
    py::object data_owner;

    void ensure_bound(const Arr& X) {
        if (data_owner.ptr() == X.ptr() && is_bound(X.data(), X.shape(0))) return;
        {
            py::gil_scoped_release nogil;
            bind_data(X.data(), X.shape(0));
        }
        data_owner = X;
    }
};

}  // namespace

namespace pyvae {

// The CUDA engine's adapters for bind_engine (see bind_engine.h).
std::unique_ptr<PyModelCuda> make_engine(PyModelCuda*, const Config& config, int n_threads,
                                         const py::kwargs& options) {
    int device = 0;
    for (const auto& item : options) {
        const std::string key = py::str(item.first);
        if (key != "device") throw py::type_error("the CUDA engine takes no option '" + key + "'");
        device = item.second.cast<int>();
    }
    if (config.likelihood == Likelihood::mixed)
        throw std::invalid_argument("the CUDA engine has no per-column likelihoods (likelihood='mixed'); use device='cpu'");
    if (!config.encoder_scale.empty())
        throw std::invalid_argument("the CUDA engine has no encoder transform (encoder_shift, encoder_scale); "
                                    "use device='cpu'");
    auto model = std::make_unique<PyModelCuda>(config, device);
    model->n_threads = n_threads;
    return model;
}

// The CUDA engine trains on the ELBO only; a model trained on the IWAE bound (on
// the CPU) still runs its inference here.
void refuse_iwae_training(const ModelCuda& self) {
    if (self.config.objective == Objective::iwae)
        throw std::invalid_argument("the CUDA engine trains on the ELBO only (objective='elbo'); "
                                    "objective='iwae' trains on the CPU engine (device='cpu')");
}

binding::LossTerms engine_loss_and_grad(ModelCuda& self, const float* params, float* grad, const float* x_obs,
                                        const float* x_enc, const float* noise, int N, double baseline) {
    refuse_iwae_training(self);
    binding::LossTerms t;
    t.loss = self.loss_and_grad(params, grad, x_obs, x_enc, noise, N, baseline, t.recon, t.kl, t.kl_analytic,
                                &t.mean_f);
    return t;
}

void engine_prepare_epoch(PyModelCuda& self, const binding::In<float>& X, bool parallel) {
    if (parallel)
        throw std::invalid_argument("the CUDA engine does not train data-parallel (fit(..., comm=...)): it runs "
                                    "whole epochs on the device, with no per-step Allreduce; use the CPU engine");
    refuse_iwae_training(self);
    self.ensure_bound(X);
}

EpochResult engine_train_epoch(ModelCuda& self, float* params, float* m, float* v, int64_t* step, double* baseline,
                               const float*, const int64_t* rows, int64_t n_rows, int batch_size, uint64_t seed,
                               const AdamSettings& adam, const DataParallel<float>*) {
    return self.train_epoch(params, m, v, step, baseline, rows, n_rows, batch_size, seed, adam,
                            binding::python_interrupted);
}

}  // namespace pyvae

namespace {

void bind_model(py::module_& m) {
    using M = PyModelCuda;
    binding::bind_engine<M, float>(m, "ModelCuda", "The VAE on an NVIDIA GPU, float32, with the interface of "
                                                   "_core.Model32 (option: device=0).")
        .def_property_readonly("device", &M::device)
        .def_readwrite("use_graphs", &M::use_graphs, "Replay full training steps as a captured CUDA graph.")
        .def_property_readonly("graph_in_use", &M::graph_in_use)
        .def("bind_data", [](M& self, Arr X) {
            binding::check_cols(X, self.config.n_features, "X");
            self.ensure_bound(X);
        }, "Copy the training data X to the device (train_epoch does it when given other data).")
        .def("release_data", [](M& self) {
            self.release_data();
            self.data_owner = py::object();
        }, "Free the device copy of the training data.");
}

// ---- kernels: each `_cuda` launcher and its CPU twin on the same inputs ------------------

// A device copy of a host array, freed on scope exit.
template <class T>
struct Dev {
    DeviceArray<T> a;
    int64_t n = 0;
    explicit Dev(int64_t size) : n(size) { a.reserve(std::max<int64_t>(1, size)); }
    Dev(const T* host, int64_t size) : Dev(size) {
        if (size) PYVAE_CUDA_CHECK(cudaMemcpy(a.get(), host, sizeof(T) * size_t(size), cudaMemcpyHostToDevice));
    }
    Dev(int64_t size, T value) : Dev(std::vector<T>(size_t(size), value).data(), size) {}
    T* get() const { return a.get(); }
    py::array_t<T> to_host(std::vector<py::ssize_t> shape) const {
        py::array_t<T> out(shape);
        PYVAE_CUDA_CHECK(cudaDeviceSynchronize());
        if (n) PYVAE_CUDA_CHECK(cudaMemcpy(out.mutable_data(), a.get(), sizeof(T) * size_t(n), cudaMemcpyDeviceToHost));
        return out;
    }
};

template <class T>
py::array_t<T> host_array(const std::vector<T>& v, std::vector<py::ssize_t> shape) {
    py::array_t<T> out(shape);
    std::copy(v.begin(), v.end(), out.mutable_data());
    return out;
}

struct KernelBench {
    Model<float> cpu;
    cublasHandle_t blas = nullptr;

    explicit KernelBench(const Config& c) : cpu(c) {
        cpu.n_threads = 1;
        PYVAE_CUBLAS_CHECK(cublasCreate(&blas));
        PYVAE_CUBLAS_CHECK(cublasSetAtomicsMode(blas, CUBLAS_ATOMICS_NOT_ALLOWED));
    }
    ~KernelBench() {
        if (blas) cublasDestroy(blas);
    }
    const Config& cfg() const { return cpu.config; }
    int Z() const { return cpu.config.n_components; }
    int D() const { return cpu.config.n_features; }
};

// Device copies of a likelihood bench call's inputs and room for its outputs.
struct LikelihoodBuffers {
    Dev<float> params, out, x, d_out, terms, column, ones, d_noise_logvar;
    Dev<double> recon;
    LikelihoodBuffers(const KernelBench& k, const In<float>& p, const In<float>& o, const In<float>& xx)
        : params(p.data(), p.size()), out(o.data(), o.size()), x(xx.data(), xx.size()), d_out(o.size()),
          terms(o.size()), column(k.D()), ones(o.shape(0), 1.f),
          d_noise_logvar(std::max(1, k.cpu.layout.n_noise_logvar), 0.f), recon(o.shape(0)) {}
    const float* noise_logvar(const KernelBench& k) const { return params.get() + k.cpu.layout.noise_logvar; }
    LogvarScratch scratch() const { return {terms.get(), column.get(), ones.get()}; }
};

void bind_kernels(py::module_& parent) {
    auto m = parent.def_submodule("kernels", "Each `_cuda` kernel beside its CPU twin, for tests.");
    using K = KernelBench;
    py::class_<K>(m, "KernelBench")
        .def(py::init([](int n_features, int n_components, std::vector<int> hidden, std::string activation,
                         std::string likelihood, std::string kl, std::string posterior, std::string estimator,
                         int n_mc_samples, double beta, bool missing, double variance_floor) {
                 return std::make_unique<K>(make_config(n_features, n_components, std::move(hidden), activation,
                                                        likelihood, kl, posterior, estimator, n_mc_samples, beta,
                                                        missing, variance_floor));
             }),
             py::arg("n_features"), py::arg("n_components"), py::arg("hidden_layer_sizes"), py::arg("activation"),
             py::arg("likelihood"), py::arg("kl"), py::arg("posterior"), py::arg("gradient_estimator"),
             py::arg("n_mc_samples"), py::arg("beta"), py::arg("missing"), py::arg("variance_floor") = 0.0)
        // dense: out (N, O) from inp (N, I), W (I, O), b (O)
        .def("dense_forward", [](K& k, Arr inp, Arr W, Arr b, bool hidden) {
            const int N = int(inp.shape(0)), I = int(inp.shape(1)), O = int(W.shape(1));
            std::vector<float> out(size_t(N) * O);
            dense_forward<float>(out.data(), inp.data(), W.data(), b.data(), N, I, O, hidden, k.cfg().activation, 1);
            return host_array(out, {N, O});
        })
        .def("dense_forward_cuda", [](K& k, Arr inp, Arr W, Arr b, bool hidden) {
            const int N = int(inp.shape(0)), I = int(inp.shape(1)), O = int(W.shape(1));
            Dev<float> di(inp.data(), inp.size()), dw(W.data(), W.size()), db(b.data(), b.size()), out(int64_t(N) * O);
            dense_forward_cuda(k.blas, nullptr, out.get(), di.get(), dw.get(), db.get(), N, I, O, hidden,
                               k.cfg().activation);
            return out.to_host({N, O});
        })
        // -> (d_inp (N, I), dW (I, O), db (O)) from d_pre (N, O), inp (N, I), W (I, O) and the gradients dW, db so far
        .def("dense_backward", [](K& k, Arr d_pre, Arr inp, Arr W, Arr dW, Arr db, bool inp_act) {
            const int N = int(inp.shape(0)), I = int(inp.shape(1)), O = int(W.shape(1));
            std::vector<float> gW(dW.data(), dW.data() + dW.size()), gb(db.data(), db.data() + db.size()),
                d_inp(size_t(N) * I);
            dense_backward<float>(d_inp.data(), gW.data(), gb.data(), d_pre.data(), inp.data(), W.data(), N, I, O,
                                  inp_act, k.cfg().activation, 1);
            return py::make_tuple(host_array(d_inp, {N, I}), host_array(gW, {I, O}), host_array(gb, {O}));
        })
        .def("dense_backward_cuda", [](K& k, Arr d_pre, Arr inp, Arr W, Arr dW, Arr db, bool inp_act) {
            const int N = int(inp.shape(0)), I = int(inp.shape(1)), O = int(W.shape(1));
            Dev<float> d(d_pre.data(), d_pre.size()), x(inp.data(), inp.size()), w(W.data(), W.size()),
                gW(dW.data(), dW.size()), gb(db.data(), db.size()), d_inp(int64_t(N) * I);
            std::vector<float> one(size_t(N), 1.f);
            Dev<float> ones(one.data(), N);
            dense_backward_cuda(k.blas, nullptr, d_inp.get(), gW.get(), gb.get(), d.get(), x.get(), w.get(), ones.get(),
                                N, I, O, inp_act, k.cfg().activation);
            return py::make_tuple(d_inp.to_host({N, I}), gW.to_host({I, O}), gb.to_host({O}));
        })
        // noise (S, N, Z) from keys (N)
        .def("fill_noise", [](K& k, In<uint64_t> keys, int S, bool uniform) {
            const int N = int(keys.size());
            std::vector<float> noise(size_t(S) * N * k.Z());
            fill_noise<float>(noise.data(), keys.data(), N, S, k.Z(), uniform, 1);
            return host_array(noise, {S, N, k.Z()});
        })
        .def("fill_noise_cuda", [](K& k, In<uint64_t> keys, int S, bool uniform) {
            const int N = int(keys.size());
            Dev<uint64_t> dk(keys.data(), N);
            Dev<float> noise(int64_t(S) * N * k.Z());
            fill_noise_cuda(nullptr, noise.get(), dk.get(), N, S, k.Z(), uniform);
            return noise.to_host({S, N, k.Z()});
        })
        // keys (N) from X (N, D)
        .def("row_keys", [](K& k, Arr X, uint64_t seed) {
            const int N = int(X.shape(0));
            std::vector<uint64_t> keys(static_cast<size_t>(N));
            k.cpu.row_keys(X.data(), N, seed, keys.data());
            return host_array(keys, {N});
        })
        .def("row_keys_cuda", [](K& k, Arr X, uint64_t seed) {
            const int N = int(X.shape(0));
            Dev<float> x(X.data(), X.size());
            Dev<uint64_t> keys(N);
            row_keys_cuda(nullptr, keys.get(), x.get(), N, k.D(), seed);
            return keys.to_host({N});
        })
        // the posterior: head (N, 2Z), draws (S, N, Z); d_head (N, 2Z) starts at 0 where a backward adds to it
        .def("logvar_clamp_forward", [](K& k, Arr head) {
            const int N = int(head.shape(0));
            std::vector<float> h(head.data(), head.data() + head.size());
            logvar_clamp_forward<float>(h.data(), N, k.Z());
            return host_array(h, {N, 2 * k.Z()});
        })
        .def("logvar_clamp_forward_cuda", [](K& k, Arr head) {
            const int N = int(head.shape(0));
            Dev<float> h(head.data(), head.size());
            logvar_clamp_forward_cuda(nullptr, h.get(), N, k.Z());
            return h.to_host({N, 2 * k.Z()});
        })
        .def("logvar_clamp_backward", [](K& k, Arr d_head, Arr head) {
            const int N = int(head.shape(0));
            std::vector<float> d(d_head.data(), d_head.data() + d_head.size());
            logvar_clamp_backward<float>(d.data(), head.data(), N, k.Z());
            return host_array(d, {N, 2 * k.Z()});
        })
        .def("logvar_clamp_backward_cuda", [](K& k, Arr d_head, Arr head) {
            const int N = int(head.shape(0));
            Dev<float> d(d_head.data(), d_head.size()), h(head.data(), head.size());
            logvar_clamp_backward_cuda(nullptr, d.get(), h.get(), N, k.Z());
            return d.to_host({N, 2 * k.Z()});
        })
        // -> (eps, z) (S, N, Z) from head (N, 2Z), noise (S, N, Z)
        .def("reparameterize_forward", [](K& k, Arr head, Arr noise) {
            const int N = int(head.shape(0)), S = int(noise.size() / (int64_t(N) * k.Z()));
            std::vector<float> eps(noise.size()), z(noise.size());
            reparameterize_forward<float>(eps.data(), z.data(), head.data(), noise.data(), N, S, k.Z(),
                                          k.cfg().posterior, 1);
            return py::make_tuple(host_array(eps, {S, N, k.Z()}), host_array(z, {S, N, k.Z()}));
        })
        .def("reparameterize_forward_cuda", [](K& k, Arr head, Arr noise) {
            const int N = int(head.shape(0)), S = int(noise.size() / (int64_t(N) * k.Z()));
            Dev<float> h(head.data(), head.size()), u(noise.data(), noise.size()), eps(noise.size()), z(noise.size());
            reparameterize_forward_cuda(nullptr, eps.get(), z.get(), h.get(), u.get(), N, S, k.Z(), k.cfg().posterior);
            return py::make_tuple(eps.to_host({S, N, k.Z()}), z.to_host({S, N, k.Z()}));
        })
        .def("reparameterize_backward", [](K& k, Arr dz, Arr head, Arr eps) {
            const int N = int(head.shape(0)), S = int(eps.size() / (int64_t(N) * k.Z()));
            std::vector<float> d_head(head.size(), 0.f);
            reparameterize_backward<float>(d_head.data(), dz.data(), head.data(), eps.data(), N, S, k.Z(), 1);
            return host_array(d_head, {N, 2 * k.Z()});
        })
        .def("reparameterize_backward_cuda", [](K& k, Arr dz, Arr head, Arr eps) {
            const int N = int(head.shape(0)), S = int(eps.size() / (int64_t(N) * k.Z()));
            std::vector<float> zeros(head.size(), 0.f);
            Dev<float> d_head(zeros.data(), head.size()), g(dz.data(), dz.size()), h(head.data(), head.size()),
                e(eps.data(), eps.size());
            reparameterize_backward_cuda(nullptr, d_head.get(), g.get(), h.get(), e.get(), N, S, k.Z());
            return d_head.to_host({N, 2 * k.Z()});
        })
        // kl_analytic (N); its backward with weight beta / N
        .def("kl_analytic_forward", [](K& k, Arr head) {
            const int N = int(head.shape(0));
            std::vector<double> kl(static_cast<size_t>(N));
            kl_analytic_forward<float>(kl.data(), head.data(), N, k.Z());
            return host_array(kl, {N});
        })
        .def("kl_analytic_forward_cuda", [](K& k, Arr head) {
            const int N = int(head.shape(0));
            Dev<float> h(head.data(), head.size());
            Dev<double> kl(N);
            kl_analytic_forward_cuda(nullptr, kl.get(), h.get(), N, k.Z());
            return kl.to_host({N});
        })
        .def("kl_analytic_backward", [](K& k, Arr head) {
            const int N = int(head.shape(0));
            std::vector<float> d_head(head.size());
            kl_analytic_backward<float>(d_head.data(), head.data(), N, k.Z(), float(k.cfg().beta), 1.f / float(N));
            return host_array(d_head, {N, 2 * k.Z()});
        })
        .def("kl_analytic_backward_cuda", [](K& k, Arr head) {
            const int N = int(head.shape(0));
            Dev<float> h(head.data(), head.size()), d_head(head.size());
            kl_analytic_backward_cuda(nullptr, d_head.get(), h.get(), N, k.Z(), float(k.cfg().beta), 1.f / float(N));
            return d_head.to_host({N, 2 * k.Z()});
        })
        // kl (S*N); its backward -> (d_head (N, 2Z), dz (S, N, Z)) with the ELBO's weights and the configured estimator
        .def("kl_mc_forward", [](K& k, Arr head, Arr eps, Arr z) {
            const int N = int(head.shape(0)), S = int(eps.size() / (int64_t(N) * k.Z()));
            std::vector<double> kl(size_t(S) * N);
            kl_mc_forward<float>(kl.data(), head.data(), eps.data(), z.data(), N, S, k.Z(), k.cfg().posterior, 1);
            return host_array(kl, {S * N});
        })
        .def("kl_mc_forward_cuda", [](K& k, Arr head, Arr eps, Arr z) {
            const int N = int(head.shape(0)), S = int(eps.size() / (int64_t(N) * k.Z()));
            Dev<float> h(head.data(), head.size()), e(eps.data(), eps.size()), zz(z.data(), z.size());
            Dev<double> kl(int64_t(S) * N);
            kl_mc_forward_cuda(nullptr, kl.get(), h.get(), e.get(), zz.get(), N, S, k.Z(), k.cfg().posterior);
            return kl.to_host({int64_t(S) * N});
        })
        .def("kl_mc_backward", [](K& k, Arr z, Arr dz) {
            const int N = int(z.shape(1)), S = int(z.shape(0));
            const bool pathwise = k.cfg().estimator == Estimator::reparameterization;
            std::vector<float> d_head(size_t(N) * 2 * k.Z()), g(dz.data(), dz.data() + dz.size());
            kl_mc_backward<float>(d_head.data(), g.data(), z.data(), N, S, k.Z(), float(k.cfg().beta), 1.f / float(N),
                                  k.cpu.draw_weights(N, S, nullptr), pathwise);
            return py::make_tuple(host_array(d_head, {N, 2 * k.Z()}), host_array(g, {S, N, k.Z()}));
        })
        .def("kl_mc_backward_cuda", [](K& k, Arr z, Arr dz) {
            const int N = int(z.shape(1)), S = int(z.shape(0));
            const bool pathwise = k.cfg().estimator == Estimator::reparameterization;
            Dev<float> zz(z.data(), z.size()), g(dz.data(), dz.size()), d_head(int64_t(N) * 2 * k.Z());
            kl_mc_backward_cuda(nullptr, d_head.get(), g.get(), zz.get(), N, S, k.Z(), float(k.cfg().beta),
                                1.f / float(N), elbo_draw_weight<float>(N, S), pathwise);
            return py::make_tuple(d_head.to_host({N, 2 * k.Z()}), g.to_host({S, N, k.Z()}));
        })
        // d_head (N, 2Z) from recon, kl (S*N) and the baseline, with the ELBO's weight 1 / (S N)
        .def("score_function_backward", [](K& k, Arr head, Arr eps, In<double> recon, In<double> kl,
                                           double baseline) {
            const int N = int(head.shape(0)), S = int(eps.size() / (int64_t(N) * k.Z()));
            std::vector<float> d_head(head.size(), 0.f);
            score_function_backward<float>(d_head.data(), head.data(), eps.data(), recon.data(), kl.data(), N, S,
                                           k.Z(), k.cfg().posterior, k.cfg().kl == KLMode::mc, float(k.cfg().beta),
                                           elbo_draw_weight<float>(N, S), baseline, 1);
            return host_array(d_head, {N, 2 * k.Z()});
        })
        .def("score_function_backward_cuda", [](K& k, Arr head, Arr eps, In<double> recon, In<double> kl,
                                                double baseline) {
            const int N = int(head.shape(0)), S = int(eps.size() / (int64_t(N) * k.Z()));
            std::vector<float> zeros(head.size(), 0.f);
            Dev<float> d_head(zeros.data(), head.size()), h(head.data(), head.size()), e(eps.data(), eps.size());
            Dev<double> rc(recon.data(), recon.size()), kk(kl.data(), kl.size()), b(&baseline, 1);
            score_function_backward_cuda(nullptr, d_head.get(), h.get(), e.get(), rc.get(), kk.get(), N, S, k.Z(),
                                         k.cfg().posterior, k.cfg().kl == KLMode::mc, float(k.cfg().beta),
                                         elbo_draw_weight<float>(N, S), b.get());
            return d_head.to_host({N, 2 * k.Z()});
        })
        // the configured likelihood: recon (S*N) from params, out (S*N, D), x (N, D);
        // backward -> (d_out (S*N, D), d_noise_logvar); forward_backward -> all three
        .def("likelihood_forward", [](K& k, Arr params, Arr out, Arr x) {
            const int N = int(x.shape(0)), S = int(out.shape(0) / N);
            std::vector<double> recon(size_t(S) * N);
            k.cpu.likelihood_forward(params.data(), out.data(), x.data(), N, S, recon.data());
            return host_array(recon, {S * N});
        })
        .def("likelihood_forward_cuda", [](K& k, Arr params, Arr out, Arr x) {
            const int N = int(x.shape(0)), S = int(out.shape(0) / N);
            LikelihoodBuffers b(k, params, out, x);
            likelihood_forward_cuda(nullptr, k.cfg(), b.noise_logvar(k), b.out.get(), b.x.get(), N, S, b.recon.get());
            return b.recon.to_host({int64_t(S) * N});
        })
        .def("likelihood_backward", [](K& k, Arr params, Arr out, Arr x, float weight) {
            const int N = int(x.shape(0)), D = k.D(), S = int(out.shape(0) / N);
            std::vector<float> d(size_t(S) * N * D), dlv(size_t(std::max(1, k.cpu.layout.n_noise_logvar)), 0.f);
            k.cpu.likelihood_backward(params.data(), out.data(), x.data(), N, S, weight, d.data(), dlv.data());
            return py::make_tuple(host_array(d, {S * N, D}), host_array(dlv, {py::ssize_t(dlv.size())}));
        })
        .def("likelihood_backward_cuda", [](K& k, Arr params, Arr out, Arr x, float weight) {
            const int N = int(x.shape(0)), D = k.D(), S = int(out.shape(0) / N);
            LikelihoodBuffers b(k, params, out, x);
            likelihood_backward_cuda(k.blas, nullptr, k.cfg(), b.noise_logvar(k), b.out.get(), b.x.get(), N, S, weight,
                                     b.d_out.get(), b.d_noise_logvar.get(), b.scratch());
            return py::make_tuple(b.d_out.to_host({int64_t(S) * N, D}), b.d_noise_logvar.to_host({b.d_noise_logvar.n}));
        })
        .def("likelihood_forward_backward", [](K& k, Arr params, Arr out, Arr x, float weight) {
            const int N = int(x.shape(0)), D = k.D(), S = int(out.shape(0) / N);
            std::vector<double> recon(size_t(S) * N);
            std::vector<float> d(size_t(S) * N * D), dlv(size_t(std::max(1, k.cpu.layout.n_noise_logvar)), 0.f);
            k.cpu.likelihood_forward_backward(params.data(), out.data(), x.data(), N, S, recon.data(), weight, d.data(),
                                              dlv.data());
            return py::make_tuple(host_array(recon, {S * N}), host_array(d, {S * N, D}),
                                  host_array(dlv, {py::ssize_t(dlv.size())}));
        })
        .def("likelihood_forward_backward_cuda", [](K& k, Arr params, Arr out, Arr x, float weight) {
            const int N = int(x.shape(0)), D = k.D(), S = int(out.shape(0) / N);
            LikelihoodBuffers b(k, params, out, x);
            likelihood_forward_backward_cuda(k.blas, nullptr, k.cfg(), b.noise_logvar(k), b.out.get(), b.x.get(), N, S,
                                             b.recon.get(), weight, b.d_out.get(), b.d_noise_logvar.get(), b.scratch());
            return py::make_tuple(b.recon.to_host({int64_t(S) * N}), b.d_out.to_host({int64_t(S) * N, D}),
                                  b.d_noise_logvar.to_host({b.d_noise_logvar.n}));
        })
        // -> (params, m, v) after one step
        .def("adam_update", [](K& k, Arr params, Arr grad, Arr m, Arr v, int64_t step, const AdamSettings& adam) {
            const int64_t P = k.cpu.n_params();
            std::vector<float> p(params.data(), params.data() + P), mm(m.data(), m.data() + P), vv(v.data(), v.data() + P);
            k.cpu.adam_update(p.data(), grad.data(), mm.data(), vv.data(), step, adam);
            return py::make_tuple(host_array(p, {P}), host_array(mm, {P}), host_array(vv, {P}));
        })
        .def("adam_update_cuda", [](K& k, Arr params, Arr grad, Arr m, Arr v, int64_t step, const AdamSettings& adam) {
            const int64_t P = k.cpu.n_params();
            std::vector<uint8_t> decay(size_t(P), 0);
            for (const auto* layers : {&k.cpu.layout.encoder, &k.cpu.layout.decoder})
                for (const Dense& d : *layers) std::fill(decay.begin() + d.w, decay.begin() + d.b, uint8_t(1));
            StepState st;
            st.step = step;
            st.adam = adam;
            st.adam_step = adam_step<float>(st.adam, step);
            Dev<float> p(params.data(), P), g(grad.data(), P), mm(m.data(), P), vv(v.data(), P);
            Dev<uint8_t> dec(decay.data(), P);
            Dev<StepState> s(&st, 1);
            adam_update_cuda(nullptr, p.get(), g.get(), mm.get(), vv.get(), dec.get(), P, s.get());
            return py::make_tuple(p.to_host({P}), mm.to_host({P}), vv.to_host({P}));
        });
}

}  // namespace

PYBIND11_MODULE(_cuda_core, m) {
    m.doc() = "pyvae's CUDA engine: the VAE's kernels on an NVIDIA GPU (float32).";
    binding::bind_adam_settings(m);
    m.def("cuda_status", &cuda_status,
          "(usable, reason, device_count): whether a CUDA device can be used, and if not, why. Never raises.");
    m.def("device_names", &device_names, "Name, compute capability and memory of each visible device.");
    m.def("live_handles", [] { return live_handles().load(); },
          "Streams and cuBLAS handles the engine holds now (for tests: none may outlive its model).");
    bind_model(m);
    bind_kernels(m);
    binding::register_index_error();
    int cublas_major = 0, cublas_minor = 0, cublas_patch = 0;
    cublasGetProperty(MAJOR_VERSION, &cublas_major);
    cublasGetProperty(MINOR_VERSION, &cublas_minor);
    cublasGetProperty(PATCH_LEVEL, &cublas_patch);
    py::dict config;
    config["cuda_runtime"] = std::to_string(CUDART_VERSION / 1000) + "." + std::to_string(CUDART_VERSION % 1000 / 10);
    config["cublas"] = std::to_string(cublas_major) + "." + std::to_string(cublas_minor) + "." +
                       std::to_string(cublas_patch);
#ifdef PYVAE_CUDA_ARCHITECTURES
    config["architectures"] = PYVAE_CUDA_ARCHITECTURES;
#endif
    config["noise"] = "counter-based (rng.h on the device), the CPU engine's streams";
    m.attr("build_config") = config;
}
