"""How a matmul is folded onto one R x C systolic array: each fold's tiles and streams, host side.

Shared by the one-fold-at-a-time emulator (``kernels/systolic.py``) and the back-to-back one
(``kernels/systolic_stream.py``).  Tiles and lanes are zero-padded to the simulation grid
(GR x GC >= R x C); the ``*_real`` flags mark the elements that exist in the matmul.
"""

from __future__ import annotations

import numpy as np

from kernels.systolic_cells import ceil_div


def os_layout(a: np.ndarray, b: np.ndarray, R: int, C: int, GR: int, GC: int) -> dict:
    """Output-stationary folds: each fold's A rows (F, K, GR) and B columns (F, K, GC) as streams."""
    (M, K), N = a.shape, b.shape[1]
    fm, fn = ceil_div(M, R), ceil_div(N, C)
    im, jn = (x.ravel() for x in np.meshgrid(np.arange(fm), np.arange(fn), indexing="ij"))
    a_p = np.zeros((fm * R, K), np.float32)
    a_p[:M] = a
    b_p = np.zeros((K, fn * C), np.float32)
    b_p[:, :N] = b
    a_rows = np.zeros((len(im), K, GR), np.float32)
    a_rows[:, :, :R] = a_p.reshape(fm, R, K).transpose(0, 2, 1)[im]        # lane = tile row
    b_cols = np.zeros((len(jn), K, GC), np.float32)
    b_cols[:, :, :C] = b_p.reshape(K, fn, C).transpose(1, 0, 2)[jn]        # lane = tile column
    real_r, real_c = np.minimum(R, M - R * im), np.minimum(C, N - C * jn)
    return dict(a_rows=a_rows, b_cols=b_cols, im=im, jn=jn, real_r=real_r, real_c=real_c,
                a_real=np.broadcast_to(np.arange(GR) < real_r[:, None, None], a_rows.shape),
                b_real=np.broadcast_to(np.arange(GC) < real_c[:, None, None], b_cols.shape))


def stationary_layout(stat: np.ndarray, stream: np.ndarray, R: int, C: int, GR: int, GC: int) -> dict:
    """Weight/input-stationary folds: stationary tiles (F, GR, GC) and each fold's stream (F, T, GR)."""
    (T, K), P = stream.shape, stat.shape[1]
    fk, fp = ceil_div(K, R), ceil_div(P, C)
    ik, jp = (x.ravel() for x in np.meshgrid(np.arange(fk), np.arange(fp), indexing="ij"))
    s_p = np.zeros((fk * GR, fp * GC), np.float32)         # each tile padded to the grid
    for i in range(fk):
        for j in range(fp):
            tile = stat[i * R:(i + 1) * R, j * C:(j + 1) * C]
            s_p[i * GR:i * GR + tile.shape[0], j * GC:j * GC + tile.shape[1]] = tile
    tiles = s_p.reshape(fk, GR, fp, GC).transpose(0, 2, 1, 3).reshape(-1, GR, GC)
    x_p = np.zeros((T, fk * R), np.float32)
    x_p[:, :K] = stream
    lanes = np.zeros((len(ik), T, GR), np.float32)
    lanes[:, :, :R] = x_p.reshape(T, fk, R).transpose(1, 0, 2)[ik]          # lane = array row
    real_r, real_c = np.minimum(R, K - R * ik), np.minimum(C, P - C * jp)
    rows_ok = np.arange(GR)[None, :, None] < real_r[:, None, None]
    cols_ok = np.arange(GC)[None, None, :] < real_c[:, None, None]
    return dict(tiles=tiles, lanes=lanes, jp=jp, last=ik == fk - 1, real_r=real_r, real_c=real_c,
                tile_real=rows_ok & cols_ok,
                lane_real=np.broadcast_to(np.arange(GR) < real_r[:, None, None], lanes.shape))
