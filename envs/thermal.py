"""Exact discrete-time update of the lumped thermal RC network.

Nodes: CPU die, GPU die, heatsink/board; the heatsink leaks to ambient. With ``theta`` the
rise above ambient, ``C dtheta/dt = P - G theta``; for power constant over ``dt`` the exact
solution is ``theta(t+dt) = theta_ss + expm(-C^-1 G dt) (theta - theta_ss)``, with
``theta_ss = G^-1 P``. ``C^-1/2 G C^-1/2`` is symmetric, so its eigen-decomposition gives the
matrix exponential as three scalar exponentials: cheap enough to apply every stage.
"""

from __future__ import annotations

import numpy as np

from lotus.envs.board import BoardProfile

FAN_LEVELS = 5  # PWM quantised to 0, 0.25, 0.5, 0.75, 1 for the precomputed networks
N_COEF = 30  # 9 (G^-1) + 9 (left) + 9 (right) + 3 (eigenvalues)


def conductance(board: BoardProfile, r_scale: float, fan_pwm: float) -> np.ndarray:
    """Conductance matrix ``G`` [3, 3] (W/K) for a heatsink resistance factor and fan PWM."""
    th = board.thermal
    g_cs = 1.0 / th.r_cpu_sink_k_per_w
    g_gs = 1.0 / th.r_gpu_sink_k_per_w
    g_cg = 1.0 / th.r_cpu_gpu_k_per_w
    g_passive = 1.0 / (th.r_sink_amb_passive_k_per_w * r_scale)
    g_fan = 1.0 / (th.r_sink_amb_fan_k_per_w * r_scale)
    g_sa = g_passive + (g_fan - g_passive) * fan_pwm
    return np.array(
        [
            [g_cs + g_cg, -g_cg, -g_cs],
            [-g_cg, g_gs + g_cg, -g_gs],
            [-g_cs, -g_gs, g_cs + g_gs + g_sa],
        ]
    )


def coefficients(board: BoardProfile, r_scale: float, fan_pwm: float, c_scale: float = 1.0) -> tuple[float, ...]:
    """The 30 numbers :func:`advance` needs: ``G^-1``, ``L``, ``R`` row-major and eigenvalues.

    :param c_scale: factor on the heatsink's heat capacity.
    """
    th = board.thermal
    g = conductance(board, r_scale, fan_pwm)
    c = np.array([th.c_cpu_j_per_k, th.c_gpu_j_per_k, th.c_sink_j_per_k * c_scale])
    c_isqrt = 1.0 / np.sqrt(c)
    sym = g * c_isqrt[:, None] * c_isqrt[None, :]
    lam, q = np.linalg.eigh(sym)
    left = c_isqrt[:, None] * q  # C^-1/2 Q
    right = q.T * np.sqrt(c)[None, :]  # Q^T C^1/2
    ginv = np.linalg.inv(g)
    return tuple(float(x) for x in np.concatenate([ginv.ravel(), left.ravel(), right.ravel(), lam]))


def coefficient_table(board: BoardProfile, r_scale: float, c_scale: float = 1.0) -> tuple[tuple[float, ...], ...]:
    """Coefficients for each quantised fan level."""
    return tuple(coefficients(board, r_scale, lvl / (FAN_LEVELS - 1), c_scale) for lvl in range(FAN_LEVELS))


def advance(k, th_c, th_g, th_s, p_c, p_g, p_s, dt, exp):  # noqa: ANN001, ANN201 - scalar or [N]
    """Temperatures rise ``(th_c, th_g, th_s)`` after ``dt`` seconds at constant power.

    ``k`` is a coefficient sequence from :func:`coefficients` (floats, or arrays ``[N]``);
    ``exp`` is ``math.exp`` or ``np.exp``.
    """
    ss_c = k[0] * p_c + k[1] * p_g + k[2] * p_s
    ss_g = k[3] * p_c + k[4] * p_g + k[5] * p_s
    ss_s = k[6] * p_c + k[7] * p_g + k[8] * p_s
    d_c, d_g, d_s = th_c - ss_c, th_g - ss_g, th_s - ss_s
    e0, e1, e2 = exp(-k[27] * dt), exp(-k[28] * dt), exp(-k[29] * dt)
    f0 = (k[18] * d_c + k[19] * d_g + k[20] * d_s) * e0
    f1 = (k[21] * d_c + k[22] * d_g + k[23] * d_s) * e1
    f2 = (k[24] * d_c + k[25] * d_g + k[26] * d_s) * e2
    return (
        ss_c + k[9] * f0 + k[10] * f1 + k[11] * f2,
        ss_g + k[12] * f0 + k[13] * f1 + k[14] * f2,
        ss_s + k[15] * f0 + k[16] * f1 + k[17] * f2,
    )


def advance_batched(coef: np.ndarray, theta: np.ndarray, power: np.ndarray, dt: np.ndarray) -> None:
    """:func:`advance` for many boards at once, in place.

    :param coef: coefficients ``[N_COEF, N]`` (the layout of :func:`coefficients`, one column a board).
    :param theta: temperature rises ``[3, N]`` (CPU, GPU, heatsink), updated in place.
    :param power: node powers ``[3, N]``, W.
    :param dt: segment lengths ``[N]``, s.
    """
    n = theta.shape[1]
    ginv, left, right = coef[0:9].reshape(3, 3, n), coef[9:18].reshape(3, 3, n), coef[18:27].reshape(3, 3, n)
    # broadcast products summed over j (j = 0, 1, 2 in turn, the order of advance); einsum was slower here,
    # and add.reduce is ndarray.sum without its Python wrapper
    total = np.add.reduce
    ss = total(ginv * power, axis=1)
    f = total(right * (theta - ss), axis=1) * np.exp(-coef[27:30] * dt)
    theta[:] = ss + total(left * f, axis=1)
