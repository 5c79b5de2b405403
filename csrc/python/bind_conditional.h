// The Python binding of ConditionalModel<T> (model/conditional.h): conversion,
// size checks and the GIL, nothing else.
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <string>
#include <vector>

#include "model/conditional.h"
#include "python/binding_util.h"

namespace pyvae::binding {

template <class T>
void bind_conditional(py::module_& m, const char* name, const char* doc) {
    using M = ConditionalModel<T>;
    py::class_<M>(m, name, doc)
        .def(py::init([](int n_features, int n_components, std::vector<int> hidden, const std::string& activation,
                         double hide_rate, double variance_floor, std::vector<std::vector<double>> bin_edges,
                         int n_threads) {
                 ConditionalConfig c;
                 c.n_features = n_features;
                 c.n_components = n_components;
                 c.hidden_layer_sizes = std::move(hidden);
                 c.activation = parse<Activation>(activation, {{"relu", Activation::relu}, {"tanh", Activation::tanh}},
                                                  "activation");
                 c.hide_rate = hide_rate;
                 c.variance_floor = variance_floor;
                 c.bin_edges = std::move(bin_edges);
                 if (n_threads < 1) throw std::invalid_argument("n_threads must be >= 1");
                 auto model = std::make_unique<M>(c);
                 model->n_threads = n_threads;
                 return model;
             }),
             py::kw_only(), py::arg("n_features"), py::arg("n_components"), py::arg("hidden_layer_sizes"),
             py::arg("activation"), py::arg("hide_rate"), py::arg("variance_floor"),
             py::arg("bin_edges") = std::vector<std::vector<double>>{}, py::arg("n_threads") = 1)
        .def_property_readonly("n_params", &M::n_params)
        .def_property_readonly("encoded_width", [](const M& self) { return self.layout.encoding.width(); })
        .def_readwrite("n_threads", &M::n_threads)
        .def("init_params", [](const M& self, uint64_t seed) {
            py::array_t<T> params(self.n_params());
            self.init_params(params.mutable_data(), seed);
            return params;
        }, py::arg("seed"))
        .def("loss_and_grad", [](const M& self, In<T> params, In<T> X, In<T> known, In<T> eps) {
            // (mean loss, gradient (P), loss per row (N)) with the given entries known and draws eps (N, Z).
            const int D = self.config.n_features, Z = self.config.n_components;
            check_cols(X, D, "X");
            check_cols(known, D, "known");
            check_cols(eps, Z, "eps");
            const int N = int(X.shape(0));
            if (params.size() != self.n_params() || known.shape(0) != N || eps.shape(0) != N || N < 1)
                throw std::invalid_argument("params, known or eps has the wrong size");
            for (int64_t e = 0; e < int64_t(N) * D; ++e)
                if (known.data()[e] != T(0) && (known.data()[e] != T(1) || std::isnan(X.data()[e])))
                    throw std::invalid_argument("known must be 0 or 1, and 1 only where X is observed");
            py::array_t<T> grad(self.n_params());
            py::array_t<double> row_loss(N);
            std::fill(grad.mutable_data(), grad.mutable_data() + self.n_params(), T(0));
            typename M::Buffers b;
            const double loss = self.loss_and_grad(params.data(), grad.mutable_data(), X.data(), known.data(),
                                                   eps.data(), N, b, row_loss.mutable_data());
            return py::make_tuple(loss, grad, row_loss);
        }, py::arg("params"), py::arg("X"), py::arg("known"), py::arg("eps"))
        .def("train_epoch", [](const M& self, py::array_t<T> params, py::array_t<T> m, py::array_t<T> v, int64_t step,
                               In<T> X, In<int64_t> rows, int batch_size, uint64_t seed, const AdamSettings& adam) {
            // One epoch: (mean loss per row, the Adam step reached); params, m and v updated in place.
            const int64_t P = self.n_params();
            T* p = writable(params, P, "params");
            T* mm = writable(m, P, "m");
            T* vv = writable(v, P, "v");
            check_cols(X, self.config.n_features, "X");
            for (py::ssize_t k = 0; k < rows.size(); ++k)
                if (rows.data()[k] < 0 || rows.data()[k] >= X.shape(0)) throw std::out_of_range("row index out of range");
            if (batch_size < 1) throw std::invalid_argument("batch_size must be >= 1");
            double loss;
            {
                py::gil_scoped_release nogil;
                loss = self.train_epoch(p, mm, vv, &step, X.data(), rows.data(), rows.size(), batch_size, seed, adam);
            }
            return py::make_tuple(loss, step);
        }, py::arg("params"), py::arg("m"), py::arg("v"), py::arg("step"), py::arg("X"), py::arg("rows"),
           py::arg("batch_size"), py::arg("seed"), py::arg("adam"))
        .def("impute", [](const M& self, In<T> params, In<T> X, int n_draws, uint64_t seed) {
            // X with each NaN replaced by the mean over n_draws draws from the prior given the observed entries.
            check_cols(X, self.config.n_features, "X");
            if (params.size() != self.n_params()) throw std::invalid_argument("params has the wrong size");
            if (n_draws < 1) throw std::invalid_argument("n_draws must be >= 1");
            const int N = int(X.shape(0));
            py::array_t<T> out({int64_t(N), int64_t(self.config.n_features)});
            {
                py::gil_scoped_release nogil;
                self.impute(params.data(), X.data(), N, n_draws, seed, out.mutable_data());
            }
            return out;
        }, py::arg("params"), py::arg("X"), py::arg("n_draws"), py::arg("seed"));
}

}  // namespace pyvae::binding
