"""Rotations for the control loop: quaternions (w, x, y, z; float64), rotation matrices and vectors.

Every function is compiled with numba (`cache=True`) because the 1 kHz impedance kernel calls
them per tick. From Python pass numpy arrays or tuples of the right length (any float or int
dtype; each new dtype compiles once); results are new float64 arrays. Rotation vectors are
axis * angle; quaternion products follow the Hamilton convention, so `quat_mul(a, b)` rotates by
b first, then by a.
"""

from __future__ import annotations

import math

import numba
import numpy as np

# Below this sine of the half angle, axis-angle formulas switch to their Taylor forms.
_SMALL = 1e-9


@numba.njit(cache=True)
def _wxyz(q):
    """Components as float64 scalars: results are float64 whatever the input dtype."""
    return np.float64(q[0]), np.float64(q[1]), np.float64(q[2]), np.float64(q[3])


@numba.njit(cache=True)
def _xyz(v):
    return np.float64(v[0]), np.float64(v[1]), np.float64(v[2])


@numba.njit(cache=True)
def quat_mul(a, b):
    """Hamilton product a * b."""
    aw, ax, ay, az = _wxyz(a)
    bw, bx, by, bz = _wxyz(b)
    return np.array(
        [
            aw * bw - ax * bx - ay * by - az * bz,
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
        ]
    )


@numba.njit(cache=True)
def quat_conj(q):
    """Conjugate (the inverse for a unit quaternion)."""
    w, x, y, z = _wxyz(q)
    return np.array([w, -x, -y, -z])


@numba.njit(cache=True)
def quat_normalize(q):
    """Unit quaternion; raises ValueError for a zero or non-finite norm."""
    w, x, y, z = _wxyz(q)
    norm = math.sqrt(w * w + x * x + y * y + z * z)
    if not (norm > 0.0 and norm < np.inf):
        raise ValueError("quat_normalize: quaternion has zero or non-finite norm")
    return np.array([w / norm, x / norm, y / norm, z / norm])


@numba.njit(cache=True)
def quat_to_mat(q):
    """Rotation matrix (3, 3) of a unit quaternion."""
    w, x, y, z = _wxyz(q)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
            [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
            [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
        ]
    )


@numba.njit(cache=True)
def mat_to_quat(R):
    """Unit quaternion (w >= 0) of a rotation matrix by Shepperd's method (stable at any angle)."""
    R = R.astype(np.float64)
    trace = R[0, 0] + R[1, 1] + R[2, 2]
    if trace >= R[0, 0] and trace >= R[1, 1] and trace >= R[2, 2]:
        s = 2.0 * math.sqrt(max(1.0 + trace, 0.0))
        q = np.array(
            [0.25 * s, (R[2, 1] - R[1, 2]) / s, (R[0, 2] - R[2, 0]) / s, (R[1, 0] - R[0, 1]) / s]
        )
    elif R[0, 0] >= R[1, 1] and R[0, 0] >= R[2, 2]:
        s = 2.0 * math.sqrt(max(1.0 + R[0, 0] - R[1, 1] - R[2, 2], 0.0))
        q = np.array(
            [(R[2, 1] - R[1, 2]) / s, 0.25 * s, (R[0, 1] + R[1, 0]) / s, (R[0, 2] + R[2, 0]) / s]
        )
    elif R[1, 1] >= R[2, 2]:
        s = 2.0 * math.sqrt(max(1.0 - R[0, 0] + R[1, 1] - R[2, 2], 0.0))
        q = np.array(
            [(R[0, 2] - R[2, 0]) / s, (R[0, 1] + R[1, 0]) / s, 0.25 * s, (R[1, 2] + R[2, 1]) / s]
        )
    else:
        s = 2.0 * math.sqrt(max(1.0 - R[0, 0] - R[1, 1] + R[2, 2], 0.0))
        q = np.array(
            [(R[1, 0] - R[0, 1]) / s, (R[0, 2] + R[2, 0]) / s, (R[1, 2] + R[2, 1]) / s, 0.25 * s]
        )
    if q[0] < 0.0:
        q = -q
    return q / math.sqrt(q[0] * q[0] + q[1] * q[1] + q[2] * q[2] + q[3] * q[3])


@numba.njit(cache=True)
def rotvec_to_quat(v):
    """Unit quaternion of the rotation vector v (axis * angle, rad): exp(v)."""
    x, y, z = _xyz(v)
    angle = math.sqrt(x * x + y * y + z * z)
    half = 0.5 * angle
    # sin(half) / angle -> 1/2 as angle -> 0
    k = math.sin(half) / angle if angle > _SMALL else 0.5 - angle * angle / 48.0
    return np.array([math.cos(half), k * x, k * y, k * z])


@numba.njit(cache=True)
def quat_to_rotvec(q):
    """Rotation vector (3,) of a unit quaternion, shortest path (angle in [0, pi]): log(q)."""
    w, x, y, z = _wxyz(q)
    if w < 0.0:  # q and -q are the same rotation; pick the one with angle <= pi
        w, x, y, z = -w, -x, -y, -z
    s = math.sqrt(x * x + y * y + z * z)
    # angle / s = 2 atan2(s, w) / s -> 2 / w as s -> 0
    k = 2.0 * math.atan2(s, w) / s if s > _SMALL else 2.0 / w
    return np.array([k * x, k * y, k * z])


@numba.njit(cache=True)
def orientation_error(q_target, q_current):
    """World-frame rotation vector r with exp(r) * q_current = q_target, shortest path."""
    return quat_to_rotvec(quat_mul(q_target, quat_conj(q_current)))


@numba.njit(cache=True)
def slerp(q0, q1, t):
    """Spherical interpolation from q0 (t=0) to q1 (t=1) along the shorter arc; unit result."""
    a, b = np.array(_wxyz(q0)), np.array(_wxyz(q1))
    dot = a[0] * b[0] + a[1] * b[1] + a[2] * b[2] + a[3] * b[3]
    sign = 1.0
    if dot < 0.0:  # go the short way round
        sign, dot = -1.0, -dot
    if dot > 1.0 - 1e-12:  # nearly equal: the arc is a line
        w0, w1 = 1.0 - t, t
    else:
        theta = math.acos(dot)
        w0 = math.sin((1.0 - t) * theta) / math.sin(theta)
        w1 = math.sin(t * theta) / math.sin(theta)
    w1 *= sign
    out = w0 * a + w1 * b
    return out / math.sqrt(out[0] * out[0] + out[1] * out[1] + out[2] * out[2] + out[3] * out[3])
