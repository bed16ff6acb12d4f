"""What the array API standard lacks, in one place, per namespace.

Generic code calls these helpers with the namespace ``xp`` of its arrays:
``numpy`` and ``cupy`` (the modules, for their fast paths), or any other
array-API namespace from :func:`array_api_compat.array_namespace` (PyTorch,
JAX, array-api-strict).  Each helper uses the library's own function where
it has one and otherwise goes through NumPy on the host (small arrays only:
an eigenvalue vector, a factor of a dense Hessian).
"""

import functools
import math

import numpy as np

from ._backend import is_cupy

__all__ = [
    "SparseRows",
    "array_min",
    "asarray_like",
    "astype",
    "cho_solve",
    "cholesky",
    "copy",
    "cumsum",
    "diagonal",
    "from_host",
    "from_numpy",
    "host_roundtrip",
    "immutable_on_host",
    "is_foreign",
    "is_real_floating",
    "norm",
    "one_hot",
    "take",
    "to_numpy",
    "trust_region_eig",
]


def _is_torch(xp):
    return xp.__name__.split(".")[-1] == "torch"


def copy(xp, a):
    """A copy of ``a`` (``a.copy()`` is not in the standard)."""
    if xp is np or is_cupy(xp):
        return a.copy()
    return xp.asarray(a, copy=True)


def norm(xp, a):
    """The Euclidean norm of the vector ``a``, as a Python float; entries
    whose squares overflow (beyond about 1e154) are scaled first, in the
    rare case where the plain sum of squares overflows."""
    if xp is np and a.ndim == 1 and a.dtype.kind == "f":
        with np.errstate(over="ignore", invalid="ignore"):  # an overflow is handled below
            value = math.sqrt(float(a @ a))
        if value != math.inf:
            return value
    plain = (lambda v: xp.linalg.norm(v)) if xp is np or is_cupy(xp) else (lambda v: xp.linalg.vector_norm(v))
    with np.errstate(over="ignore", invalid="ignore"):
        value = float(plain(a))
        if value != math.inf:
            return value
        scale = float(xp.max(xp.abs(a)))
        if not math.isfinite(scale) or scale == 0.0:
            return value
        return scale * float(plain(a / scale))


def all_true(xp, a):
    """``bool(xp.all(a))``; on NumPy through the method, a few microseconds
    less a call (small problems make many)."""
    return bool(a.all()) if xp is np else bool(xp.all(a))


def array_min(xp, a):
    """The smallest entry of ``a``, as a Python float."""
    return float(xp.min(a))


def diagonal(xp, A):
    """A copy of the main diagonal of the matrix ``A``."""
    if xp is np or is_cupy(xp):
        return xp.diagonal(A).copy()
    return copy(xp, xp.linalg.diagonal(A))


def astype(xp, a, dtype, copy=False):
    """``a`` in ``dtype``; not copied when it has it already, unless
    ``copy``."""
    if xp is np or is_cupy(xp):
        return a.astype(dtype, copy=copy)
    return xp.astype(a, dtype, copy=copy)


def asarray_like(xp, value, like, dtype=None):
    """``value`` (a scalar, a list or a NumPy array) as an array of ``xp``
    on the device of the array ``like``."""
    if xp is np:
        return np.asarray(value, dtype=dtype)
    if is_cupy(xp):  # pragma: no cover - GPU; CuPy's asarray has no device argument
        with xp.cuda.Device(like.device):
            return xp.asarray(value, dtype=dtype)
    from array_api_compat import device

    return xp.asarray(value, dtype=dtype, device=device(like))


def concat(xp, arrays, axis=0):
    """``arrays`` joined along ``axis``."""
    if xp is np or is_cupy(xp):
        return xp.concatenate(arrays, axis=axis)
    return xp.concat(arrays, axis=axis)


def zeros_like_shape(xp, shape, dtype, like):
    """Zeros of ``shape`` and ``dtype`` on the device of ``like``."""
    if xp is np or is_cupy(xp):
        return xp.zeros(shape, dtype=dtype)
    from array_api_compat import device

    return xp.zeros(shape, dtype=dtype, device=device(like))


def add_diagonal(xp, A, value):
    """``A + value I`` (in place for NumPy and CuPy)."""
    n = A.shape[0]
    if xp is np or is_cupy(xp):
        A[xp.arange(n), xp.arange(n)] += value
        return A
    from array_api_compat import device

    return A + value * xp.eye(n, dtype=A.dtype, device=device(A))


def scatter_zeros(xp, index, values, n):
    """The length-``n`` vector with ``values`` at the sorted, distinct
    integer positions ``index`` and zeros elsewhere (the standard has no
    assignment through an index array: a ``searchsorted`` does it)."""
    if xp is np or is_cupy(xp):
        out = xp.zeros(n, dtype=values.dtype)
        out[index] = values
        return out
    positions = asarray_like(xp, np.arange(n), index, dtype=index.dtype)
    if index.shape[0] == 0:
        return xp.zeros(n, dtype=values.dtype, device=values.device)
    slot = xp.clip(xp.searchsorted(index, positions), max=index.shape[0] - 1)
    hit = xp.take(index, slot) == positions
    return xp.where(hit, xp.take(values, slot), 0.0)


def solve_triangular(xp, A, b, lower, trans=False):
    """``A^{-1} b`` (``A^{-T} b`` with ``trans``) for a triangular ``A``;
    ``b`` a vector or a matrix.  Namespaces without a triangular solver
    (the standard has none) use the general ``linalg.solve``."""
    if xp is np or is_cupy(xp):
        if is_cupy(xp):  # pragma: no cover - GPU
            from cupyx.scipy.linalg import solve_triangular as solve
        else:
            from scipy.linalg import solve_triangular as solve
        kwargs = {} if is_cupy(xp) else {"check_finite": False}
        return solve(A, b, lower=lower, trans="T" if trans else "N", **kwargs)
    if trans:
        A, lower = A.T, not lower
    column = b.ndim == 1
    B = b[:, None] if column else b
    if _is_torch(xp):
        import torch

        X = torch.linalg.solve_triangular(A, B, upper=not lower)
    else:
        X = xp.linalg.solve(A, B)
    return X[:, 0] if column else X

def one_hot(xp, y, K, dtype):
    """The indicator matrix ``Y[i, c] = (y_i == c)`` of integer labels
    (the standard has no indexing by pairs of arrays)."""
    classes = asarray_like(xp, np.arange(K), y, dtype=y.dtype)
    return astype(xp, y[:, None] == classes[None, :], dtype)


def cumsum(xp, a, axis):
    """The cumulative sum of ``a`` along ``axis``."""
    if xp is np or is_cupy(xp):
        return xp.cumsum(a, axis=axis)
    return xp.cumulative_sum(a, axis=axis)


def take(xp, a, index, axis=0):
    """The entries of ``a`` at the integer array ``index`` along ``axis``
    (rows of a sparse matrix too)."""
    if xp is np or is_cupy(xp) or hasattr(a, "tocsr"):
        return a[index] if axis == 0 else a[:, index]
    return xp.take(a, index, axis=axis)


def is_real_floating(xp, dtype):
    """Whether ``dtype`` is a real floating dtype of ``xp``."""
    if xp is np or is_cupy(xp):
        return np.issubdtype(dtype, np.floating)
    return xp.isdtype(dtype, "real floating")


def to_numpy(a):
    """``a`` as a NumPy array on the host."""
    if isinstance(a, np.ndarray):
        return a
    if type(a).__module__.split(".")[0] == "cupy":
        return a.get()
    try:
        return np.from_dlpack(a)
    except Exception:
        # a device array, or a library without DLPack on the host: its own conversion
        return np.asarray(a.cpu() if hasattr(a, "cpu") else a)


def from_numpy(xp, a, like):
    """The NumPy array ``a`` in ``like``'s namespace, dtype and device."""
    if xp is np:
        return a.astype(like.dtype, copy=False)
    from array_api_compat import device

    return xp.asarray(a, dtype=like.dtype, device=device(like))


class _StandardFactor:
    """For namespaces with no triangular solve (the standard has none): the
    shifted matrix, proved positive definite by the standard's
    ``linalg.cholesky``, and solved with ``linalg.solve``."""

    def __init__(self, matrix):
        self.matrix = matrix


def cholesky(xp, A, shift):
    """A Cholesky factorisation of ``A + shift I`` for :func:`cho_solve`.

    Raises ``numpy.linalg.LinAlgError`` when the matrix is not positive
    definite (callers turn it into their own error).
    """
    n = A.shape[0]
    if is_cupy(xp):
        L = xp.linalg.cholesky(add_diagonal(xp, A.copy(), shift))
        # cuSOLVER does not raise on an indefinite matrix; it leaves NaNs.
        if not bool(xp.all(xp.isfinite(xp.diagonal(L)))):
            raise np.linalg.LinAlgError("not positive definite")
        return L
    if xp is np:
        # LAPACK's potrf directly: scipy.linalg.cho_factor's checks cost ten times the factorisation of the
        # small matrices that Newton methods on few parameters factor at every iteration.  It factors a
        # Fortran-ordered copy of a C-ordered matrix, so only a shift or Fortran order needs a copy here.
        B = add_diagonal(np, A.copy(), shift) if shift or not A.flags.c_contiguous else A
        (potrf,) = _lapack(("potrf",), B.dtype)
        c, info = potrf(B, lower=1, clean=0, overwrite_a=B is not A)
        if info != 0:
            raise np.linalg.LinAlgError("not positive definite")
        return c
    if _is_torch(xp):
        import torch

        L, info = torch.linalg.cholesky_ex(A + shift * torch.eye(n, dtype=A.dtype, device=A.device))
        if int(info) != 0:
            raise np.linalg.LinAlgError("not positive definite")
        return L
    from array_api_compat import device

    B = A + shift * xp.eye(n, dtype=A.dtype, device=device(A))
    L = xp.linalg.cholesky(B)  # raises (NumPy's LinAlgError) when B is not positive definite
    if not bool(xp.all(xp.isfinite(xp.linalg.diagonal(L)))):
        raise np.linalg.LinAlgError("not positive definite")
    return _StandardFactor(B)


_LAPACK = {}


def _lapack(names, dtype):
    """LAPACK routines for ``dtype`` (looked up once per dtype)."""
    key = (names, np.dtype(dtype).char)
    if key not in _LAPACK:
        import scipy.linalg

        _LAPACK[key] = scipy.linalg.get_lapack_funcs(names, dtype=dtype)
    return _LAPACK[key]


def cho_solve(xp, factor, v):
    """``(A + shift I)^{-1} v`` from :func:`cholesky`'s factor; ``v`` a
    vector or a matrix of right-hand sides."""
    if is_cupy(xp):
        from cupyx.scipy.linalg import solve_triangular

        y = solve_triangular(factor, v, lower=True)
        return solve_triangular(factor, y, lower=True, trans="T")
    if xp is np:
        (potrs,) = _lapack(("potrs",), np.result_type(factor, v))
        x, info = potrs(factor, v, lower=1)
        if info != 0:  # pragma: no cover - only for malformed arguments
            raise ValueError(f"LAPACK potrs failed (info={info}).")
        return x
    B = v[:, None] if v.ndim == 1 else v
    if isinstance(factor, _StandardFactor):
        x = xp.linalg.solve(factor.matrix, B)
    else:
        import torch

        x = torch.cholesky_solve(B, factor)
    return x[:, 0] if v.ndim == 1 else x


def trust_region_eig(xp, w, b, radius):
    """The exact trust-region step in an eigenbasis (see the kernel
    ``trust_region_eig``), in ``b``'s namespace and dtype, and whether it
    lies on the boundary (the norm constraint's multiplier is positive, or
    the hard case was met).  The kernel runs on NumPy/CuPy arrays; other
    namespaces hand it host copies of the two vectors."""
    from ._backend import kernels

    if xp is np or is_cupy(xp):
        c, sigma, hard = kernels(xp).trust_region_eig(w, b, radius)
        return xp.asarray(c, dtype=b.dtype), bool(sigma > 0.0 or hard)
    c, sigma, hard = kernels(np).trust_region_eig(to_numpy(w), to_numpy(b), radius)
    return from_numpy(xp, np.asarray(c), b), bool(sigma > 0.0 or hard)


def is_foreign(value):
    """Whether ``value`` is an array of a library other than NumPy and CuPy
    (the backend module's classification)."""
    from ._backend import _BACKENDS, _array_module_name

    if value is None or isinstance(value, (np.ndarray, np.generic, int, float, complex, bool, str)):
        return False
    return _array_module_name(value) not in _BACKENDS


def _arrays_in(values):
    for v in values:
        if isinstance(v, (tuple, list)):
            yield from _arrays_in(v)
        elif hasattr(v, "shape") and hasattr(v, "dtype"):
            yield v


def _to_host(value):
    if isinstance(value, (tuple, list)):
        return type(value)(_to_host(v) for v in value)
    return to_numpy(value) if is_foreign(value) else value


def from_host(xp, value, like):
    """The NumPy arrays in ``value`` (also inside tuples and dicts) in
    namespace ``xp`` on ``like``'s device, each keeping its dtype."""
    if isinstance(value, np.ndarray):
        return asarray_like(xp, value, like)
    if isinstance(value, tuple):
        return tuple(from_host(xp, v, like) for v in value)
    if isinstance(value, dict):
        return {k: from_host(xp, v, like) for k, v in value.items()}
    return value


def _immutable(a):
    # JAX's arrays cannot be written in place, which the generic kernels do
    return type(a).__module__.split(".")[0] in ("jax", "jaxlib")


def immutable_on_host(func):
    """Run ``func`` on the arrays of every mutable library as they are (the
    generic code is array-API code) and through :func:`host_roundtrip` for
    the libraries whose arrays cannot be written in place (JAX)."""
    through_host = host_roundtrip(func)

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        if any(_immutable(a) for a in _arrays_in(list(args) + list(kwargs.values()))):
            return through_host(*args, **kwargs)
        return func(*args, **kwargs)

    return wrapper


def host_roundtrip(func):
    """Let a function whose kernels run on NumPy take the arrays of any
    array-API library: arguments of another library (PyTorch, JAX,
    array-api-strict) are copied to NumPy, and the arrays of the result
    (also inside tuples and dicts) come back in that library, on the device
    of its inputs.  NumPy and CuPy arrays pass through untouched; arrays of
    different libraries together are an error, as everywhere."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        arrays = list(_arrays_in(list(args) + list(kwargs.values())))
        foreign = [a for a in arrays if is_foreign(a)]
        if not foreign:
            return func(*args, **kwargs)
        from ._backend import get_namespace

        xp = get_namespace(*arrays)  # raises when libraries are mixed
        out = func(*_to_host(list(args)), **{k: _to_host(v) for k, v in kwargs.items()})
        return from_host(xp, out, foreign[0])

    return wrapper


class SparseRows:
    r"""A sparse n x m matrix from its entries ``(vals, rows, cols)``, for
    products :meth:`matvec` (:math:`Sx`) and :meth:`rmatvec` (:math:`S^Tx`)
    in any namespace (sparse matrices are not in the standard).

    NumPy and CuPy arrays get SciPy's and CuPy's CSR matrices; PyTorch its
    sparse COO tensors; any other namespace a segmented sum in standard
    functions: the products ``vals * x[cols]`` sorted by row, a cumulative
    sum, and its differences at the row boundaries (``searchsorted``).
    Duplicate entries add up, as in SciPy.  ``indptr``, where given (the
    entries sorted by row, ``indptr[i]:indptr[i + 1]`` those of row ``i``),
    spares NumPy and CuPy the conversion to CSR, and ``rows`` may then be
    None.
    """

    def __init__(self, xp, vals, rows, cols, shape, indptr=None):
        self.xp, self.shape = xp, tuple(shape)
        self.nnz = int(vals.shape[0])
        if rows is None and not (xp is np or is_cupy(xp)):  # the row of each entry, from the row boundaries
            rows = xp.searchsorted(indptr[1:], xp.arange(self.nnz, dtype=indptr.dtype), side="right")
        if xp is np or is_cupy(xp):
            if is_cupy(xp):  # pragma: no cover - GPU
                from cupyx.scipy import sparse
            else:
                from scipy import sparse
            if indptr is not None:  # entries already in row order: CSR as it is
                self._S = sparse.csr_matrix((vals, cols, indptr), shape=self.shape)
            else:
                self._S = sparse.csr_matrix((vals, (rows, cols)), shape=self.shape)
            # SciPy's transpose is a CSC view of the same arrays (no copy); CuPy's products are faster on CSR
            self._ST = self._S.T.tocsr() if is_cupy(xp) else self._S.T
            self._kind = "scipy"
        elif _is_torch(xp):
            import torch

            # coalesced COO (sparse CSR tensors are in beta and warn); the indices come from us, valid
            coo = torch.sparse_coo_tensor(torch.stack([rows, cols]), vals, self.shape, check_invariants=False)
            self._S = coo.coalesce()
            self._ST = coo.t().coalesce()
            self._kind = "torch"
        else:
            self._S = _segments(xp, vals, rows, cols, self.shape[0])
            self._ST = _segments(xp, vals, cols, rows, self.shape[1])
            self._kind = "generic"

    def _product(self, S, x):
        if self._kind == "scipy":
            return S @ x
        if self._kind == "torch":
            return (S @ x[:, None])[:, 0]
        xp = self.xp
        vals, index, bounds = S
        sums = xp.concat([xp.zeros(1, dtype=vals.dtype), xp.cumulative_sum(vals * xp.take(x, index))])
        return xp.take(sums, bounds[1:]) - xp.take(sums, bounds[:-1])

    def squared(self):
        """The matrix of the squared entries (the same pattern)."""
        out = object.__new__(SparseRows)
        out.xp, out.shape, out.nnz, out._kind = self.xp, self.shape, self.nnz, self._kind
        if self._kind == "scipy":
            out._S = self._S.power(2)
            out._ST = out._S.T.tocsr() if is_cupy(self.xp) else out._S.T
        elif self._kind == "torch":
            out._S, out._ST = (S.pow(2) for S in (self._S, self._ST))
        else:
            out._S, out._ST = ((vals * vals, index, bounds) for vals, index, bounds in (self._S, self._ST))
        return out

    def _kernel(self, name, *args, **kwargs):
        """The CSR kernel ``name`` of the backend table on this matrix's
        arrays (NumPy and CuPy), then ``args``."""
        table = self.__dict__.get("_table")
        if table is None:  # looked up once per matrix: CG calls its products many times (a lookup reads the
            from ._backend import kernels  # environment)

            table = self._table = kernels(self.xp)
        S = self._S
        return getattr(table, name)(S.data, S.indices, S.indptr, self.shape[1], *args, **kwargs)

    def squared_rmatvec(self, x):
        r""":math:`(S \circ S)^T x`, the entries squared (on NumPy without a
        squared copy of them)."""
        if self.xp is np and x.ndim == 1:
            return self._kernel("csr_rmatvec", x, square=True)
        return self.squared().rmatvec(x)

    def gram(self, x, weights):
        r""":math:`S^T (w \circ S x)`, ``w`` = ``weights``: on NumPy and CuPy
        one parallel pass over the entries (the GLM kernels' weighted Gram
        product), elsewhere the two products."""
        if self._kind == "scipy":
            return self._kernel("gram_matvec_csr", weights, x, 0.0)[0]
        return self.rmatvec(weights * self.matvec(x))

    def matvec(self, x):
        """:math:`S x`."""
        if self.xp is np and x.ndim == 1:  # over numba's threads: SciPy's products run on one
            return self._kernel("csr_matvec", x)
        return self._product(self._S, x)

    def rmatvec(self, x):
        """:math:`S^T x`."""
        if self.xp is np and x.ndim == 1:
            return self._kernel("csr_rmatvec", x)
        return self._product(self._ST, x)


def _segments(xp, vals, rows, cols, n):
    """The entries ordered by row, and the row boundaries in that order."""
    order = xp.argsort(rows, stable=True)
    sorted_rows = xp.take(rows, order)
    bounds = xp.searchsorted(sorted_rows, xp.arange(n + 1, dtype=sorted_rows.dtype))
    return xp.take(vals, order), xp.take(cols, order), bounds
