"""scikit-learn estimators on the fused GLM losses."""

import warnings
from contextlib import nullcontext

import numpy as np
import scipy.optimize
import scipy.sparse
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model._base import LinearClassifierMixin
from sklearn.preprocessing import LabelEncoder
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import (
    check_is_fitted,
    validate_data,
)

from .._array_api import asarray_like, astype, norm, to_numpy
from .._backend import get_namespace, one_blas_thread
from ..optimize import minimize
from . import _dask
from ._auto import fit_auto
from ._base import _check_csr_structure, check_classes, check_sample_weight, check_X
from ._logistic_loss import LogisticLoss
from ._softmax_loss import SoftmaxLoss

__all__ = ["LogisticRegression", "SoftmaxRegression"]


_SOLVERS = ("auto", "gns", "trust-region", "lbfgs")
_CURVATURES = ("exact", "gauss-newton", "fisher", "subsampled")



def _encode_integers(y):
    """``(classes, codes)`` of integer labels, as ``LabelEncoder`` gives
    them (sorted classes, codes their indices).  Labels 0 .. K - 1, the
    usual case, are their own codes: a count of each value finds the
    classes, without a sort.  Otherwise NumPy's hashing unique finds them
    and a binary search the codes (np.unique's inverse sorts ``y``: twice
    as long at n = 3000)."""
    dtype = y.dtype
    y = y.astype(np.int64) if dtype.kind == "b" else y
    low, high = int(y.min()), int(y.max())
    if low == 0 and high < y.shape[0]:
        classes = np.flatnonzero(np.bincount(y))
        if classes.shape[0] == high + 1:
            return classes.astype(dtype), y
    classes = np.unique(y)
    return classes.astype(dtype), np.searchsorted(classes, y)

class _BaseLogistic(LinearClassifierMixin, ClassifierMixin, BaseEstimator):
    """Shared fit/predict machinery; subclasses choose the loss."""

    _multinomial_always = False

    def __init__(
        self,
        C=1.0,
        *,
        fit_intercept=True,
        tol=1e-4,
        max_iter=100,
        solver="auto",
        curvature="exact",
        class_weight=None,
        verbose=0,
    ):
        self.C = C
        self.fit_intercept = fit_intercept
        self.tol = tol
        self.max_iter = max_iter
        self.solver = solver
        self.curvature = curvature
        self.class_weight = class_weight
        self.verbose = verbose

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags

    def _check_params(self):
        if not (isinstance(self.C, (int, float, np.number)) and np.isfinite(self.C) and self.C > 0):
            raise ValueError(f"`C` must be a positive finite number; got {self.C!r}.")
        if not (isinstance(self.tol, (int, float, np.number)) and self.tol > 0):
            raise ValueError(f"`tol` must be a positive number; got {self.tol!r}.")
        if not (isinstance(self.max_iter, (int, np.integer)) and self.max_iter >= 1):
            raise ValueError(f"`max_iter` must be an integer >= 1; got {self.max_iter!r}.")
        if self.solver not in _SOLVERS:
            raise ValueError(f"`solver` must be one of {', '.join(_SOLVERS)}; got {self.solver!r}.")
        if self.curvature not in _CURVATURES:
            raise ValueError(f"`curvature` must be one of {', '.join(_CURVATURES)}; got {self.curvature!r}.")

    def fit(self, X, y, sample_weight=None):
        """Fit the model to ``X`` and ``y``.

        Minimises :math:`\\sum_i s_i \\ell_i + \\frac{1}{2C}\\|W\\|^2`,
        scaled by :math:`1/\\sum_i s_i` (scikit-learn's objective, so the
        coefficients match its ``LogisticRegression``), with the chosen
        second-order ``solver``.  ``sample_weight`` multiplies
        ``class_weight``.

        Returns
        -------
        self
        """
        if _dask.is_dask_collection(X):
            return _dask.fit(self, X, y, sample_weight)
        self._check_params()
        xp = get_namespace(X)
        if xp is np:
            X, y = self._validate_data(X, y)
        else:
            # CuPy, PyTorch, array-api-strict...: X stays in its library and on its device; the labels
            # (one vector) are encoded on the host, as scikit-learn does
            X = check_X(X)
            self.n_features_in_ = X.shape[1]
            y = to_numpy(y)
        if isinstance(y, np.ndarray) and y.ndim == 1 and y.dtype.kind in "iub":
            # integer labels in a 1-D array: always binary or multiclass targets, encoded as LabelEncoder
            # does (sorted classes) without its array-API dispatch, which small fits pay for
            self.classes_, y_index = _encode_integers(y)
        else:
            check_classification_targets(y)
            encoder = LabelEncoder()
            y_index = encoder.fit_transform(y)
            self.classes_ = encoder.classes_
        K = check_classes(self.classes_)
        sw = check_sample_weight(sample_weight, X.shape[0])
        if self.class_weight is not None:
            cw = compute_class_weight(self.class_weight, classes=self.classes_, y=y)
            sw = sw * cw[y_index]
        total = float(sw.sum())
        if not total > 0:
            raise ValueError("`sample_weight` (times `class_weight`) sums to zero: nothing to fit.")
        alpha = 1.0 / (self.C * total)
        if K == 2 and not self._multinomial_always:
            loss = LogisticLoss(X, y_index, alpha=alpha, fit_intercept=self.fit_intercept, sample_weight=sw, check_input=False)
        else:
            loss = SoftmaxLoss(
                X, y_index, n_classes=K, alpha=alpha, fit_intercept=self.fit_intercept, sample_weight=sw, check_input=False
            )
        res = self._solve(loss)
        self._set_coefficients(loss, res, X.dtype)
        if xp is not np and self.classes_.dtype.kind in "iufb":
            self.classes_ = asarray_like(xp, self.classes_, self.coef_)  # numeric labels: in X's library
        self.n_iter_ = np.array([res.nit], dtype=np.int32)
        self.solver_ = getattr(res, "solver", self.solver)
        return self

    def _validate_data(self, X, y):
        """``X`` and ``y`` of a NumPy fit, checked as scikit-learn's
        ``validate_data`` checks them, which also sets ``n_features_in_``.
        In C order, as scikit-learn's estimator asks: the fused numba passes
        read rows.  NaN and inf in ``X`` are found by the loss's first pass
        instead of a pass of their own (see ``LogisticLoss``'s
        ``check_input``).

        The usual input, a C-ordered float matrix and a vector of integer
        labels as plain arrays, is what ``validate_data`` would return
        unchanged: it is taken as it is, without the few hundred
        microseconds of that call's general checks (on 1000 x 10, a fifth
        of the fit).  Anything else goes through ``validate_data``.
        """
        if (type(X) is np.ndarray and type(y) is np.ndarray and X.ndim == 2 and y.ndim == 1
                and X.dtype in (np.float64, np.float32) and X.flags.c_contiguous and X.shape[1] > 0
                and y.shape[0] == X.shape[0] > 0 and y.dtype.kind in "iub"):
            self.n_features_in_ = X.shape[1]
            if hasattr(self, "feature_names_in_"):  # fitted on a data frame before
                del self.feature_names_in_
            return X, y
        return validate_data(self, X, y, accept_sparse="csr", dtype=[np.float64, np.float32], order="C",
                             ensure_all_finite=False)

    def _set_coefficients(self, loss, res, dtype):
        """``coef_`` and ``intercept_`` from the solution ``res.x``."""
        xp, K_out, d = loss.xp, loss.n_outputs, loss.n_features
        w = astype(xp, res.x, xp.float64)
        self.coef_ = astype(xp, xp.reshape(w[: K_out * d], (K_out, d)), dtype)
        intercept = w[K_out * d :] if self.fit_intercept else loss._zeros(K_out)
        if K_out > 1:
            # The softmax loss is unchanged by a shift of all intercepts; the
            # centred one is scikit-learn's (and the minimum-norm) choice.
            intercept = intercept - xp.mean(intercept)
        self.intercept_ = astype(xp, intercept, dtype)

    def _solve(self, loss):
        # With fused numba passes, BLAS is left with vector operations; its
        # idle threads spin-wait after each call and take the cores the
        # numba threads need (several-fold slower passes on small machines).
        # Passes on the calling thread alone need no such limit, and setting
        # it (threadpoolctl, twice) costs a tenth of a 1000 x 30 fit.
        threaded = loss.fused and not loss._serial(loss.n_outputs)
        with one_blas_thread() if threaded else nullcontext():
            return self._run_solver(loss)

    def _run_solver(self, loss):
        xp = loss.xp
        w0 = astype(xp, loss.initial_params(), xp.float64)
        if self.solver == "auto":
            res = fit_auto(loss, self.tol, self.max_iter, self.curvature, self.verbose)
            converged = bool(res.success)
        elif self.solver == "lbfgs":
            fun = loss.value_and_grad
            if xp is not np:  # scipy's L-BFGS-B iterates on the host

                def fun(w):
                    value, g = loss.value_and_grad(asarray_like(xp, w, w0))
                    return value, to_numpy(g)

            res = scipy.optimize.minimize(
                fun,
                to_numpy(w0),
                jac=True,
                method="L-BFGS-B",
                options={"maxiter": self.max_iter, "gtol": self.tol, "ftol": 64 * np.finfo(float).eps},
            )
            converged = res.status == 0
            res.x = asarray_like(xp, res.x, w0)
        else:
            options = {"gtol": self.tol, "maxiter": self.max_iter, "disp": bool(self.verbose)}
            with warnings.catch_warnings():
                # The estimator's own warning below names the remedy.
                warnings.simplefilter("ignore", RuntimeWarning)
                res = minimize(
                    loss.value_and_grad,
                    w0,
                    jac=True,
                    hess=loss.curvature(self.curvature),
                    method=self.solver,
                    options=options,
                )
            converged = bool(res.success)
        if not converged:
            warnings.warn(
                f"{type(self).__name__} (solver={self.solver!r}) did not converge in {res.nit} iterations "
                f"(gradient norm {norm(get_namespace(res.jac), res.jac):.2e} > tol={self.tol:g}): {res.message} "
                "Increase `max_iter`, scale the features (sklearn.preprocessing.StandardScaler) or loosen `tol`.",
                ConvergenceWarning,
                stacklevel=4,
            )
        return res

    def decision_function(self, X):
        """Confidence scores, shape (n_samples, n_classes) (scikit-learn's);
        in ``X``'s array library (lazy for Dask collections)."""
        if _dask.is_dask_collection(X):
            check_is_fitted(self)
            return _dask.decision_function(self, X)
        xp = get_namespace(X)
        if xp is np:
            if scipy.sparse.issparse(X):
                # SciPy's products trust the index arrays: a malformed matrix gives garbage or worse
                _check_csr_structure(X.tocsr(), "X")
            return super().decision_function(X)
        check_is_fitted(self)
        X = check_X(X)
        if X.shape[1] != self.n_features_in_:
            raise ValueError(f"`X` has {X.shape[1]} features, but the model was fitted with {self.n_features_in_}.")
        if get_namespace(self.coef_) is not xp:
            raise TypeError("`X` must come from the array library the model was fitted with.")
        scores = X @ astype(xp, self.coef_, X.dtype).T + astype(xp, self.intercept_, X.dtype)
        return scores[:, 0] if scores.shape[1] == 1 else scores

    def predict(self, X):
        """Class labels, in ``X``'s array library when they are numbers."""
        if _dask.is_dask_collection(X):
            check_is_fitted(self)
            return _dask.predict(self, X)
        xp = get_namespace(X)
        if xp is np:
            return super().predict(X)
        scores = self.decision_function(X)
        index = astype(xp, scores > 0, xp.int64) if scores.ndim == 1 else xp.argmax(scores, axis=1)
        if isinstance(self.classes_, np.ndarray):  # text labels live on the host
            return self.classes_[to_numpy(index)]
        return xp.take(self.classes_, index)

    def predict_proba(self, X):
        """Class probabilities, shape (n_samples, n_classes), in the order
        of ``classes_``."""
        check_is_fitted(self)
        if _dask.is_dask_collection(X):
            return _dask.predict_proba(self, X)
        return _exp_normalised(self.predict_log_proba(X))

    def predict_log_proba(self, X):
        """Logarithm of :meth:`predict_proba`, computed stably."""
        check_is_fitted(self)
        if _dask.is_dask_collection(X):
            return _dask.predict_log_proba(self, X)
        scores = self.decision_function(X)
        xp = get_namespace(scores)
        scores = astype(xp, scores, xp.float64)
        if scores.ndim == 1:
            scores = xp.stack([xp.zeros_like(scores), scores], axis=1)
        top = xp.max(scores, axis=1, keepdims=True)
        return scores - top - xp.log(xp.sum(xp.exp(scores - top), axis=1, keepdims=True))


def _exp_normalised(log_p):
    xp = get_namespace(log_p)
    p = xp.exp(log_p)
    return p / xp.sum(p, axis=1, keepdims=True)


class LogisticRegression(_BaseLogistic):
    r"""Logistic regression fitted by second-order methods.

    scikit-learn's ``LogisticRegression`` with L2 penalty: the binary
    logistic loss for two classes, the multinomial (softmax) loss for more,
    the objective

    .. math::

        \frac{1}{S}\sum_i s_i \ell_i(W x_i + b) + \frac{1}{2 C S} \|W\|^2,
        \qquad S = \sum_i s_i,

    minimised by :func:`secondorder.minimize` with ``method=solver`` over
    the fused losses :class:`LogisticLoss` / :class:`SoftmaxLoss`.

    Parameters
    ----------
    C : float
        Inverse regularisation strength, as in scikit-learn.
    fit_intercept : bool
        Fit an (unpenalised) intercept.
    tol : float
        Stop when the gradient norm of the scaled objective is below
        ``tol`` (``solver="lbfgs"`` uses scipy's test: the largest
        gradient entry).
    max_iter : int
        Iterations of the solver.
    solver : {"auto", "gns", "trust-region", "lbfgs"}
        ``"auto"`` (default): L-BFGS in the variables scaled by the
        Hessian's diagonal at zero, which makes unscaled features as easy
        as scaled ones, handing over to trust-region Newton when its
        observed rate predicts more passes over ``X`` than Newton needs
        (ill-conditioned problems, large ``C``); ``solver_`` says which
        ran.  The rule is in the user guide.  ``"gns"``: regularised
        Newton with gradient-normalised smoothness; ``"trust-region"``:
        trust-region Newton; ``"lbfgs"``: scipy's L-BFGS-B on the same
        fused loss, unscaled, stopped by its own tests.
    curvature : {"exact", "gauss-newton", "fisher", "subsampled"}
        The curvature model of the Newton methods (see
        :meth:`LogisticLoss.curvature`).  The Hessian is built densely for
        the binary loss with at most 64 parameters on dense ``X``, and used
        through Hessian-vector products (conjugate gradients) otherwise.
    class_weight : dict or "balanced", optional
        Weights per class, multiplied into ``sample_weight``.
    verbose : int
        Print the solver's iteration table.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
    coef_ : ndarray of shape (1, n_features) or (n_classes, n_features)
    intercept_ : ndarray of shape (1,) or (n_classes,)
    n_iter_ : ndarray of shape (1,)
        Iterations, of both methods where ``solver="auto"`` used two.
    solver_ : str
        The method that ran: ``"newton-cholesky"`` (small binary problems
        on dense ``X``; ``"newton-cholesky+trust-region"`` where it handed
        over), ``"lbfgs"`` or ``"lbfgs+trust-region"`` for
        ``solver="auto"`` (on Dask data with at most 32 parameters, or
        128 for the binary loss on dense ``X``: ``"trust-region"``), else
        ``solver``.
    n_features_in_ : int
    feature_names_in_ : ndarray, when ``X`` has feature names

    References
    ----------
    .. [1] M. Semenov, M. Jaggi and N. Doikov, "Gradient-normalized
       smoothness for optimization with approximate Hessians", 2025.

    Examples
    --------
    >>> from sklearn.datasets import load_breast_cancer
    >>> from sklearn.preprocessing import StandardScaler
    >>> from secondorder.linear_model import LogisticRegression
    >>> X, y = load_breast_cancer(return_X_y=True)
    >>> X = StandardScaler().fit_transform(X)
    >>> clf = LogisticRegression(C=1.0).fit(X, y)
    >>> round(clf.score(X, y), 3)
    0.988
    """


class SoftmaxRegression(_BaseLogistic):
    r"""Multinomial logistic (softmax) regression, for any number of classes.

    As :class:`LogisticRegression` but always with the softmax loss: two
    classes give ``coef_`` of shape ``(2, n_features)``.  With
    ``curvature="gauss-newton"`` the second-order solvers use the weighted
    Gauss-Newton matrix of the GNS paper.
    """

    _multinomial_always = True

    def decision_function(self, X):
        """Confidence scores: shape (n_samples, n_classes), or for two
        classes scikit-learn's 1-D score of the second class (the difference
        of the two margins)."""
        scores = super().decision_function(X)
        if scores.ndim == 2 and scores.shape[1] == 2:
            return scores[:, 1] - scores[:, 0]
        return scores
