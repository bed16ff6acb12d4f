"""LogisticRegression and SoftmaxRegression against scikit-learn, and the
scikit-learn estimator checks."""

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.datasets import load_breast_cancer, load_digits, make_classification
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression as SKLogisticRegression
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from secondorder.linear_model import LogisticRegression, SoftmaxRegression


def _dataset(name):
    if name == "breast_cancer":
        X, y = load_breast_cancer(return_X_y=True)
    elif name == "digits":
        X, y = load_digits(return_X_y=True)
    else:
        X, y = make_classification(n_samples=600, n_features=12, n_informative=6, n_classes=3, random_state=2)
    return StandardScaler().fit_transform(X), y


def _reference(X, y, sample_weight=None, **kw):
    # newton-cg at a tight tol: an independent second-order reference
    sk = SKLogisticRegression(solver="newton-cg", tol=1e-12, max_iter=10000, **kw)
    return sk.fit(X, y, sample_weight=sample_weight)


@pytest.mark.parametrize("name", ["breast_cancer", "digits", "synthetic"])
@pytest.mark.parametrize("fit_intercept", [True, False])
@pytest.mark.parametrize("solver", ["auto", "gns", "trust-region"])
def test_coefficients_match_scikit_learn(name, fit_intercept, solver):
    X, y = _dataset(name)
    rng = np.random.default_rng(0)
    sw = rng.random(len(y)) + 0.5 if fit_intercept else None
    ref = _reference(X, y, sample_weight=sw, C=0.5, fit_intercept=fit_intercept)
    clf = LogisticRegression(C=0.5, tol=1e-10, max_iter=500, solver=solver, fit_intercept=fit_intercept)
    clf.fit(X, y, sample_weight=sw)
    # gradient norm <= 1e-10 bounds the distance to the minimiser by
    # 1e-10 / (smallest curvature), which is small along the intercepts
    assert_allclose(clf.coef_, ref.coef_, atol=1e-7)
    assert_allclose(clf.intercept_, ref.intercept_, atol=1e-6)
    assert_allclose(clf.predict_proba(X), ref.predict_proba(X), atol=1e-7)
    assert np.array_equal(clf.predict(X), ref.predict(X))
    assert clf.n_iter_[0] >= 1


@pytest.mark.parametrize("name", ["breast_cancer", "synthetic"])
def test_sparse_input_matches_dense(name):
    X, y = _dataset(name)
    X = np.where(np.abs(X) < 0.5, 0.0, X)
    ref = _reference(X, y, C=2.0)
    clf = LogisticRegression(C=2.0, tol=1e-10).fit(sp.csr_matrix(X), y)
    assert_allclose(clf.coef_, ref.coef_, atol=1e-7)
    assert_allclose(clf.intercept_, ref.intercept_, atol=1e-6)


def test_float32_and_string_labels():
    X, y = _dataset("synthetic")
    labels = np.array(["ant", "bee", "cat"])[y]
    ref = _reference(X, y)
    clf = LogisticRegression(tol=1e-6).fit(X.astype(np.float32), labels)
    assert clf.coef_.dtype == np.float32
    assert list(clf.classes_) == ["ant", "bee", "cat"]
    assert_allclose(clf.coef_, ref.coef_, atol=1e-4)
    assert set(clf.predict(X)) <= set(labels)


@pytest.mark.parametrize(
    "codes",
    [np.array([7, -3, 12]), np.array([2**40, 5, -(2**40)]), np.array([True, False]), np.array([0, 2, 1], np.uint8),
     np.array([0, 2, 3])],
)
def test_integer_and_boolean_labels_are_encoded_as_sorted_classes(codes):
    X, y = _dataset("synthetic")
    labels = codes[y % codes.shape[0]]
    clf = LogisticRegression(tol=1e-8).fit(X, labels)
    assert_array_equal(clf.classes_, np.sort(codes))
    assert clf.classes_.dtype == labels.dtype
    sk = SKLogisticRegression(tol=1e-10, max_iter=10000).fit(X, labels)
    assert_allclose(clf.coef_, sk.coef_, atol=1e-4)
    assert_array_equal(clf.predict(X), sk.predict(X))


def test_softmax_regression_binary_and_approximations():
    X, y = _dataset("breast_cancer")
    binary = LogisticRegression(tol=1e-10).fit(X, y)
    soft = SoftmaxRegression(tol=1e-10).fit(X, y)
    assert soft.coef_.shape == (2, X.shape[1])
    # The two-class softmax with penalty 1/(2C) on both rows is the logistic
    # model with C doubled: W1 - W0 = 2 W1 at the optimum (W0 = -W1).
    doubled = LogisticRegression(C=2.0, tol=1e-10).fit(X, y)
    assert_allclose(soft.coef_[1] - soft.coef_[0], doubled.coef_[0], atol=1e-6)
    assert_allclose(soft.coef_[0], -soft.coef_[1], atol=1e-8)
    assert_allclose(soft.predict_proba(X), doubled.predict_proba(X), atol=1e-7)
    assert binary.coef_.shape == (1, X.shape[1])
    X3, y3 = _dataset("synthetic")
    ref = _reference(X3, y3)
    for curvature in ("gauss-newton", "fisher", "subsampled"):
        # approximate curvature converges linearly: a looser tol than Newton's
        clf = SoftmaxRegression(tol=1e-7, max_iter=2000, curvature=curvature).fit(X3, y3)
        assert_allclose(clf.coef_, ref.coef_, atol=1e-5)


def test_class_weight_equals_sample_weight():
    X, y = _dataset("synthetic")
    cw = {0: 1.0, 1: 3.0, 2: 0.5}
    a = LogisticRegression(tol=1e-10, class_weight=cw).fit(X, y)
    b = LogisticRegression(tol=1e-10).fit(X, y, sample_weight=np.array([cw[c] for c in y]))
    assert_allclose(a.coef_, b.coef_, atol=1e-9)


def test_convergence_warning_names_the_remedy():
    X, y = _dataset("digits")
    with pytest.warns(ConvergenceWarning, match="Increase `max_iter`"):
        LogisticRegression(max_iter=1, tol=1e-12).fit(X, y)


def test_lbfgs_solver_and_log_proba():
    X, y = _dataset("synthetic")
    clf = LogisticRegression(solver="lbfgs", tol=1e-8, max_iter=1000).fit(X, y)
    assert_allclose(np.exp(clf.predict_log_proba(X)), clf.predict_proba(X), rtol=1e-12)
    assert_allclose(clf.predict_proba(X).sum(1), 1.0)


@pytest.mark.parametrize(
    "X_change, y_change, kwargs, match",
    [
        (lambda X: np.where(X > 2, np.nan, X), None, {}, "`X` must be finite.* NaN"),
        (lambda X: np.where(X > 2, np.inf, X), None, {}, "`X` must be finite.* inf"),
        (None, lambda y: np.zeros_like(y), {}, "only one class"),
        (None, lambda y: y[:-1], {}, "inconsistent numbers of samples"),
        (None, None, {"C": -1.0}, "`C`"),
        (None, None, {"solver": "sag"}, "`solver`"),
        (None, None, {"curvature": "bfgs"}, "`curvature`"),
        (None, None, {"max_iter": 0}, "`max_iter`"),
    ],
)
def test_bad_input(X_change, y_change, kwargs, match):
    X, y = _dataset("breast_cancer")
    X = X_change(X) if X_change else X
    y = y_change(y) if y_change else y
    with pytest.raises(ValueError, match=match):
        LogisticRegression(**kwargs).fit(X, y)


def test_negative_sample_weight():
    X, y = _dataset("breast_cancer")
    with pytest.raises(ValueError, match="non-negative"):
        LogisticRegression().fit(X, y, sample_weight=-np.ones(len(y)))


@parametrize_with_checks([LogisticRegression(), SoftmaxRegression(), LogisticRegression(solver="trust-region")])
def test_scikit_learn_estimator_checks(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        check(estimator)


def test_docstring_examples_run():
    import doctest

    import secondorder.linear_model._logistic as estimators
    import secondorder.linear_model._logistic_loss as losses

    for module in (losses, estimators):
        result = doctest.testmod(module)
        assert result.failed == 0 and result.attempted > 0


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("labels", [np.int64, np.uint8, bool])
def test_plain_arrays_skip_validate_data_with_its_result(dtype, labels):
    """A C-ordered float matrix and integer labels are taken as they are, as
    scikit-learn's validate_data returns them, with the same attributes set;
    anything else goes through validate_data and its messages."""
    from sklearn.utils.validation import validate_data

    X, y = _dataset("breast_cancer")
    X, y = X.astype(dtype), y.astype(labels)
    ours, reference = LogisticRegression(), LogisticRegression()
    got = ours._validate_data(X, y)
    expected = validate_data(reference, X, y, accept_sparse="csr", dtype=[np.float64, np.float32], order="C",
                             ensure_all_finite=False)
    assert got[0] is X and got[1] is y and expected[0] is X
    assert_array_equal(expected[1], y)
    assert vars(ours) == vars(reference)
    with pytest.raises(ValueError, match="Expected 2D array"):
        ours._validate_data(X[:, 0], y)
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        ours._validate_data(X, y[:-1])
    clf = LogisticRegression().fit(np.asfortranarray(X), y)  # F order: validate_data's copy
    assert clf.n_features_in_ == X.shape[1]


def test_refit_on_plain_arrays_forgets_feature_names():
    pd = pytest.importorskip("pandas")
    X, y = _dataset("breast_cancer")
    clf = LogisticRegression().fit(pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])]), y)
    assert len(clf.feature_names_in_) == X.shape[1]
    clf.fit(X, y)
    assert not hasattr(clf, "feature_names_in_")
    assert clf.n_features_in_ == X.shape[1]
