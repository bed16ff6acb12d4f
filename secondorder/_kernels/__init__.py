"""Kernel packages: ``cpu`` (numba), ``gpu`` (CuPy) and ``fallback`` (NumPy).

Each package exports the same names in ``__all__``; fetch a table with
:func:`secondorder._backend.kernels`.  Nothing here is imported eagerly.
"""
