"""``solver="auto"``: its rule (L-BFGS in scaled variables, Newton where it
is slow), checked against scikit-learn on problems of both kinds, and the
diagonal it scales by against the dense Hessian."""

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from numpy.testing import assert_allclose
from sklearn.linear_model import LogisticRegression as SKLogisticRegression

from secondorder.linear_model import LogisticLoss, LogisticRegression, SoftmaxLoss, SoftmaxRegression


def _problem(n, d, classes=2, spread=1.0, seed=0, correlated=False):
    """Features whose scales spread over ``spread`` (unscaled data), and
    optionally strongly correlated columns."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    if correlated:
        X = X @ (np.eye(d) + 3.0 * rng.standard_normal((d, d)) / np.sqrt(d))
        X[:, 1] = X[:, 0] + 1e-3 * rng.standard_normal(n)
    scales = np.logspace(0, np.log10(spread), d)
    rng.shuffle(scales)
    X = X * scales
    W = rng.standard_normal((classes if classes > 2 else 1, d)) / scales / np.sqrt(d)
    Z = X @ W.T
    if classes > 2:
        y = np.argmax(Z + rng.gumbel(size=Z.shape), axis=1)
    else:
        y = (rng.random(n) < 1 / (1 + np.exp(-Z[:, 0]))).astype(int)
    return X, y


def _objective_gradient(clf, X, y, C, sample_weight=None):
    n = X.shape[0]
    total = n if sample_weight is None else sample_weight.sum()
    if len(clf.classes_) == 2 and clf.coef_.shape[0] == 1:
        loss = LogisticLoss(X, y, alpha=1 / (C * total), sample_weight=sample_weight)
    else:
        loss = SoftmaxLoss(X, y, alpha=1 / (C * total), sample_weight=sample_weight)
    w = np.concatenate([clf.coef_.ravel(), clf.intercept_])
    return np.linalg.norm(loss.grad(w))


@pytest.mark.parametrize(
    "kwargs, C, route",
    [
        (dict(n=3000, d=40), 1.0, "lbfgs"),  # well conditioned: L-BFGS alone
        (dict(n=3000, d=40, spread=1e4), 1.0, None),  # unscaled: the scaling makes it well conditioned
        (dict(n=2000, d=30, correlated=True, spread=1e3), 1e4, "lbfgs+trust-region"),
        (dict(n=2000, d=12, classes=4, spread=1e3), 10.0, None),
        # the gradient's pass sums the Hessian: Newton from the start
        (dict(n=3000, d=15), 1.0, "newton-cholesky"),
        (dict(n=3000, d=15, spread=1e4), 1.0, "newton-cholesky"),
        (dict(n=2000, d=20, correlated=True, spread=1e3), 1e4, "newton-cholesky"),
    ],
)
def test_auto_matches_scikit_learn(kwargs, C, route):
    X, y = _problem(**kwargs)
    ref = SKLogisticRegression(C=C, solver="newton-cholesky" if len(np.unique(y)) == 2 else "newton-cg",
                               tol=1e-13, max_iter=10000).fit(X, y)
    clf = LogisticRegression(C=C, tol=1e-9, max_iter=1000).fit(X, y)
    assert clf.solver_ in ("lbfgs", "lbfgs+trust-region", "newton-cholesky")
    if route is not None:
        assert clf.solver_ == route
    # the tolerance is the original objective's gradient norm, whatever the scaling
    assert _objective_gradient(clf, X, y, C) <= 1e-9
    assert_allclose(clf.predict_proba(X), ref.predict_proba(X), atol=1e-6)
    assert np.array_equal(clf.predict(X), ref.predict(X))


def test_auto_float32_sparse_and_weights():
    X, y = _problem(1500, 20, spread=100.0, seed=3)
    X = np.where(np.abs(X) < 0.3 * np.abs(X).max(0), 0.0, X)
    sw = np.random.default_rng(1).random(y.shape[0]) + 0.5
    ref = SKLogisticRegression(C=2.0, solver="newton-cholesky", tol=1e-13, max_iter=1000).fit(X, y, sample_weight=sw)
    dense = LogisticRegression(C=2.0, tol=1e-9).fit(X, y, sample_weight=sw)
    sparse = LogisticRegression(C=2.0, tol=1e-9).fit(sp.csr_matrix(X), y, sample_weight=sw)
    assert_allclose(sparse.coef_, dense.coef_, rtol=1e-6, atol=1e-9)
    assert_allclose(dense.predict_proba(X), ref.predict_proba(X), atol=1e-6)
    single = LogisticRegression(C=2.0, tol=1e-4).fit(X.astype(np.float32), y, sample_weight=sw)
    assert single.coef_.dtype == np.float32
    assert_allclose(single.predict_proba(X), ref.predict_proba(X), atol=1e-3)


def test_auto_stops_at_max_iter_with_a_warning():
    X, y = _problem(2000, 30, correlated=True, spread=1e3)
    with pytest.warns(Warning, match="did not converge"):
        clf = LogisticRegression(C=1e4, tol=1e-12, max_iter=3).fit(X, y)
    assert clf.n_iter_[0] <= 3  # both phases together


def test_auto_with_an_empty_feature_and_no_intercept():
    X, y = _problem(800, 6, spread=10.0, seed=7)
    X[:, 2] = 0.0
    ref = SKLogisticRegression(C=5.0, fit_intercept=False, solver="newton-cholesky", tol=1e-13).fit(X, y)
    clf = LogisticRegression(C=5.0, fit_intercept=False, tol=1e-10).fit(X, y)
    assert clf.coef_[0, 2] == 0.0
    assert_allclose(clf.coef_, ref.coef_, atol=1e-7)


@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("classes, fit_intercept", [(2, True), (3, True), (3, False)])
def test_hessian_diagonal_against_the_dense_hessian(sparse, classes, fit_intercept):
    X, y = _problem(400, 7, classes=classes, spread=30.0, seed=5)
    sw = np.random.default_rng(2).random(400)
    Xs = sp.csr_matrix(np.where(np.abs(X) < 0.5, 0.0, X)) if sparse else X
    cls = LogisticLoss if classes == 2 else SoftmaxLoss
    loss = cls(Xs, y, alpha=0.3, fit_intercept=fit_intercept, sample_weight=sw)
    w = np.random.default_rng(classes).standard_normal(loss.n_params) * 0.3
    for point in (loss.initial_params(), w):
        assert_allclose(loss.hessian_diagonal(point), np.diag(loss.hess(point)), rtol=1e-11)


def test_softmax_regression_auto():
    X, y = _problem(1200, 10, classes=2, spread=50.0, seed=4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        clf = SoftmaxRegression(C=3.0, tol=1e-9).fit(X, y)
    # two softmax rows penalised apart equal one binary row w = W_2 - W_1 at twice the C
    ref = SKLogisticRegression(C=6.0, solver="newton-cholesky", tol=1e-13, max_iter=1000).fit(X, y)
    assert_allclose(clf.predict_proba(X), ref.predict_proba(X), atol=1e-6)


def test_newton_phase_goes_over_to_the_dense_matrix_where_cg_is_costly(monkeypatch):
    """The multinomial Newton phase starts on products; at a point where CG
    spent more products than the dense matrix costs, the next points use
    the dense matrix, and the fit still matches scikit-learn."""
    from secondorder.linear_model import _auto

    class Products:
        ncg = 0

        def update(self, x, g, **kwargs):
            self.seen = (x, g)

        def trust_step(self, g, radius):
            return "products", False

    class Dense(Products):
        def trust_step(self, g, radius):
            return "dense", False

    products = Products()
    model = _auto._ProductsThenDense(products, Dense, budget=10)
    x = g = np.zeros(3)
    for spent, expected in [(4, "products"), (30, "products"), (0, "dense"), (0, "dense")]:
        model.update(x, g)
        assert model.trust_step(g, 1.0)[0] == expected
        products.ncg += spent
    # correlated features, three classes: CG pays for the condition in products
    rng = np.random.default_rng(0)
    n, d = 4000, 60
    X = rng.standard_normal((n, d)) @ (np.eye(d) + 2.0 * rng.standard_normal((d, d)) / np.sqrt(d))
    X[:, 1] = X[:, 0] + 1e-3 * rng.standard_normal(n)
    y = np.argmax(X @ rng.standard_normal((d, 3)) / np.sqrt(d) + rng.gumbel(size=(n, 3)), axis=1)
    loss = SoftmaxLoss(X, y, n_classes=3, alpha=1.0 / n)
    assert isinstance(_auto._newton_curvature(loss, "exact"), _auto._ProductsThenDense)
    switched = []
    update = _auto._ProductsThenDense.update

    def spy(self, x, g, **kwargs):
        out = update(self, x, g, **kwargs)
        switched.append(self.current is not self.products)
        return out

    monkeypatch.setattr(_auto._ProductsThenDense, "update", spy)
    ours = SoftmaxRegression(C=1.0, tol=1e-9).fit(X, y)
    assert any(switched) and not switched[0]
    # the solution: the gradient norm asked for, and scikit-learn's objective
    w = np.r_[ours.coef_.ravel(), ours.intercept_]
    assert np.linalg.norm(loss.grad(w)) <= 1e-9
    sk = SKLogisticRegression(C=1.0, tol=1e-12, max_iter=10000).fit(X, y)
    w_sk = np.r_[(sk.coef_ - sk.coef_.mean(0)).ravel(), sk.intercept_ - sk.intercept_.mean()]
    assert loss.value(w) <= loss.value(w_sk) + 1e-12
    assert_allclose(ours.coef_, sk.coef_ - sk.coef_.mean(0), atol=1e-3 * np.abs(sk.coef_).max())


def test_lazy_dense_matrix_is_reused_while_the_gradient_contracts():
    """The rule: a fresh matrix at the first point; kept at a point where
    the last step shrank the gradient at least twofold (its factorisation
    too); refreshed where it did not."""
    from secondorder.linear_model import _auto

    class Dense:
        nhev = nfact = 0

        def update(self, x, g, **kwargs):
            self.at = x

    class Loss:
        xp = np
        _prefetch = "exact"

    loss, dense = Loss(), Dense()
    model = _auto._LazyDense(loss, dense, cost=4.0)
    points = [(0, 1.0), (1, 0.1), (2, 0.06), (3, 0.001), (4, 0.0009)]
    at = []
    for x, gnorm in points:
        model.update(x, np.array([gnorm]))
        at.append(dense.at)
        assert loss._prefetch is None  # later gradients leave the matrix out
    assert at == [0, 0, 2, 2, 4] and model.refreshes == 3
    # with the tolerance known: a rate of 0.4 (kept above) needs 20 more steps from 1e-2 to 1e-10, more than a
    # new matrix (cost 4) and a step; a rate of 1e-3 needs 2
    model = _auto._LazyDense(loss, dense, cost=4.0)
    at = []
    for x, gnorm in [(0, 1.0), (1, 1e-2), (2, 4e-3), (3, 4e-6), (4, 4e-9)]:
        model.update(x, np.array([gnorm]), gtol=1e-10)
        at.append(dense.at)
    assert at == [0, 0, 2, 2, 2] and model.refreshes == 2


def test_newton_phase_reuses_the_dense_matrix(monkeypatch):
    """Binary, correlated features, more than _LAZY_MIN parameters: the
    Newton phase evaluates fewer matrices than it visits points, and the
    fit reaches tol and scikit-learn's solution."""
    from secondorder.linear_model import _auto

    X, y = _problem(3000, 60, correlated=True)
    C = 10.0
    updates, refreshes = [], []
    update = _auto._LazyDense.update

    def spy(self, x, g, **kwargs):
        out = update(self, x, g, **kwargs)
        updates.append(1)
        refreshes.append(self.refreshes)
        return out

    monkeypatch.setattr(_auto._LazyDense, "update", spy)
    ours = LogisticRegression(C=C, tol=1e-9).fit(X, y)
    assert ours.solver_ == "lbfgs+trust-region"
    assert 1 <= refreshes[-1] < len(updates)
    assert _objective_gradient(ours, X, y, C) <= 1e-9
    dense = LogisticRegression(C=C, tol=1e-9, solver="trust-region").fit(X, y)
    assert_allclose(ours.coef_, dense.coef_, rtol=1e-6, atol=1e-8)
    sk = SKLogisticRegression(C=C, tol=1e-12, max_iter=100, solver="newton-cholesky").fit(X, y)
    assert_allclose(ours.coef_, sk.coef_, rtol=1e-6, atol=1e-8)
