"""Rigid transforms as 4x4 homogeneous matrices; quaternions are w, x, y, z (MuJoCo order).

`T_a_b` maps points from frame b into frame a (the pose of b in a).
"""

from __future__ import annotations

import numpy as np


def make(R: np.ndarray, t: np.ndarray) -> np.ndarray:
    T = np.eye(4)
    T[:3, :3] = R
    T[:3, 3] = np.asarray(t, dtype=float).reshape(3)
    return T


def inv(T: np.ndarray) -> np.ndarray:
    R, t = T[:3, :3], T[:3, 3]
    return make(R.T, -R.T @ t)


def quat_to_matrix(q_wxyz: np.ndarray) -> np.ndarray:
    w, x, y, z = np.asarray(q_wxyz, dtype=float) / np.linalg.norm(q_wxyz)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
            [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
            [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
        ]
    )


def matrix_to_quat(R: np.ndarray) -> np.ndarray:
    """Rotation matrix -> unit quaternion (w, x, y, z) with w >= 0."""
    # Shepperd's method: pick the largest of the four squared components for numerical stability.
    m = R
    trace = m[0, 0] + m[1, 1] + m[2, 2]
    cands = np.array([trace, m[0, 0], m[1, 1], m[2, 2]])
    i = int(np.argmax(cands))
    if i == 0:
        s = 2.0 * np.sqrt(1.0 + trace)
        q = [0.25 * s, (m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s]
    elif i == 1:
        s = 2.0 * np.sqrt(1.0 + m[0, 0] - m[1, 1] - m[2, 2])
        q = [(m[2, 1] - m[1, 2]) / s, 0.25 * s, (m[0, 1] + m[1, 0]) / s, (m[0, 2] + m[2, 0]) / s]
    elif i == 2:
        s = 2.0 * np.sqrt(1.0 + m[1, 1] - m[0, 0] - m[2, 2])
        q = [(m[0, 2] - m[2, 0]) / s, (m[0, 1] + m[1, 0]) / s, 0.25 * s, (m[1, 2] + m[2, 1]) / s]
    else:
        s = 2.0 * np.sqrt(1.0 + m[2, 2] - m[0, 0] - m[1, 1])
        q = [(m[1, 0] - m[0, 1]) / s, (m[0, 2] + m[2, 0]) / s, (m[1, 2] + m[2, 1]) / s, 0.25 * s]
    q = np.array(q)
    q /= np.linalg.norm(q)
    return q if q[0] >= 0 else -q


def from_pose7(pose: np.ndarray) -> np.ndarray:
    """(x, y, z, qw, qx, qy, qz) -> 4x4; the `tcp_pose` layout of the env and `current_pose`."""
    pose = np.asarray(pose, dtype=float).reshape(7)
    return make(quat_to_matrix(pose[3:]), pose[:3])


def to_pose7(T: np.ndarray) -> np.ndarray:
    return np.concatenate([T[:3, 3], matrix_to_quat(T[:3, :3])])


def rotation_angle(R: np.ndarray) -> float:
    """Angle of a rotation matrix in radians, in [0, pi]."""
    return float(np.arccos(np.clip((np.trace(R) - 1.0) / 2.0, -1.0, 1.0)))


def mean_transform(Ts: list[np.ndarray]) -> np.ndarray:
    """Chordal mean: mean translation, and the rotation closest (Frobenius) to the mean matrix."""
    R_mean = np.mean([T[:3, :3] for T in Ts], axis=0)
    U, _, Vt = np.linalg.svd(R_mean)
    R = U @ np.diag([1.0, 1.0, np.linalg.det(U @ Vt)]) @ Vt
    return make(R, np.mean([T[:3, 3] for T in Ts], axis=0))


def errors(T_est: np.ndarray, T_ref: np.ndarray) -> tuple[float, float]:
    """(translation error in m, rotation error in rad) between two poses."""
    dt = float(np.linalg.norm(T_est[:3, 3] - T_ref[:3, 3]))
    return dt, rotation_angle(T_est[:3, :3].T @ T_ref[:3, :3])
