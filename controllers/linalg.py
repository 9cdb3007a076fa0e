"""Small dense linear algebra for the 1 kHz kernel (6 x n Jacobians, n x n mass matrices).

Explicit loops compiled by numba: for matrices this small they beat LAPACK calls, whose
per-call overhead dominates, and they need no BLAS (numba's np.dot/np.linalg need SciPy).
"""

from __future__ import annotations

import math

import numba
import numpy as np


@numba.njit(cache=True)
def matvec(A, x):
    """A @ x."""
    rows, cols = A.shape
    out = np.zeros(rows)
    for i in range(rows):
        for j in range(cols):
            out[i] += A[i, j] * x[j]
    return out


@numba.njit(cache=True)
def matTvec(A, x):
    """A.T @ x."""
    rows, cols = A.shape
    out = np.zeros(cols)
    for i in range(rows):
        for j in range(cols):
            out[j] += A[i, j] * x[i]
    return out


@numba.njit(cache=True)
def matmul(A, B):
    """A @ B."""
    rows, inner = A.shape
    cols = B.shape[1]
    out = np.zeros((rows, cols))
    for i in range(rows):
        for k in range(inner):
            for j in range(cols):
                out[i, j] += A[i, k] * B[k, j]
    return out


@numba.njit(cache=True)
def cholesky(A, damping):
    """Lower-triangular L with L @ L.T = A + damping * I; None if that is not positive definite."""
    m = A.shape[0]
    L = np.zeros((m, m))
    for j in range(m):
        d = A[j, j] + damping
        for k in range(j):
            d -= L[j, k] * L[j, k]
        if not d > 0.0:  # also catches NaN
            return None
        L[j, j] = math.sqrt(d)
        for i in range(j + 1, m):
            s = A[i, j]
            for k in range(j):
                s -= L[i, k] * L[j, k]
            L[i, j] = s / L[j, j]
    return L


@numba.njit(cache=True)
def cho_solve(L, b):
    """x with L @ L.T @ x = b: forward then back substitution."""
    m = L.shape[0]
    y = np.empty(m)
    for i in range(m):
        s = b[i]
        for k in range(i):
            s -= L[i, k] * y[k]
        y[i] = s / L[i, i]
    x = np.empty(m)
    for i in range(m - 1, -1, -1):
        s = y[i]
        for k in range(i + 1, m):
            s -= L[k, i] * x[k]
        x[i] = s / L[i, i]
    return x
