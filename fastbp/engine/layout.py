"""Where every weight and bias lives in the one flat parameter vector.

The order is the paper's gradient vector, layer by layer: W1, b1, W2, b2, ...,
WL, bL. Each W^l has shape (n_l, n_{l-1}) and is stored row-major, so that
z^l = W^l a^{l-1} + b^l (and PyTorch's ``Linear.weight`` has the same
orientation). The gradient uses the same layout, so it *is* the paper's ∇C.
"""

import numpy as np

__all__ = ["Layout"]


class Layout:
    """Offsets of W1, b1, ..., WL, bL for the layer sizes ``sizes``.

    Parameters
    ----------
    sizes : sequence of int
        ``[n_0, n_1, ..., n_L]``: the input width followed by each layer's width.

    Attributes
    ----------
    sizes : tuple of int
    n_layers : int
        L, the number of weight layers (``len(sizes) - 1``).
    w_off, b_off : ndarray of int64, shape (L,)
        Where W^l and b^l start in the flat vector (index ``l - 1``).
    n_params : int
        Length of the flat vector.
    """

    def __init__(self, sizes):
        self.sizes = tuple(int(s) for s in sizes)
        w_off, b_off, off = [], [], 0
        for n_in, n_out in zip(self.sizes[:-1], self.sizes[1:]):
            w_off.append(off)
            off += n_out * n_in
            b_off.append(off)
            off += n_out
        self.w_off = np.array(w_off, dtype=np.int64)
        self.b_off = np.array(b_off, dtype=np.int64)
        self.n_params = off
        self.sizes_arr = np.array(self.sizes, dtype=np.int64)

    @property
    def n_layers(self):
        return len(self.sizes) - 1

    def _check_layer(self, l):
        L = self.n_layers
        if isinstance(l, bool) or not isinstance(l, (int, np.integer)):
            raise TypeError(f"l: expected an int layer number 1..{L}, got {l!r}")
        if not 1 <= l <= L:
            raise ValueError(
                f"l: layers are numbered 1..{L} as in the paper (W^1 maps the input), got {l}"
            )
        return int(l) - 1

    def weights(self, flat, l):
        """View of W^l, shape (n_l, n_{l-1}), into ``flat`` (no copy)."""
        i = self._check_layer(l)
        n_in, n_out = self.sizes[i], self.sizes[i + 1]
        return flat[self.w_off[i] : self.w_off[i] + n_out * n_in].reshape(n_out, n_in)

    def biases(self, flat, l):
        """View of b^l, shape (n_l,), into ``flat`` (no copy)."""
        i = self._check_layer(l)
        return flat[self.b_off[i] : self.b_off[i] + self.sizes[i + 1]]

    def unpack(self, flat):
        """``[(W1, b1), ..., (WL, bL)]`` as views into ``flat``."""
        return [(self.weights(flat, l), self.biases(flat, l)) for l in range(1, self.n_layers + 1)]

    def init(self, flat, rng, schemes):
        """Fill ``flat`` in place: weights by ``schemes[l-1]``, biases zero.

        ``"glorot"`` draws U(-r, r) with r = sqrt(6 / (fan_in + fan_out))
        (Glorot & Bengio 2010, cited by the paper); ``"he"`` draws
        N(0, 2 / fan_in) (He et al. 2015, for ReLU). Draws are made in float64
        and rounded, so float32 and float64 networks start from the same values.
        """
        for i, scheme in enumerate(schemes):
            n_in, n_out = self.sizes[i], self.sizes[i + 1]
            W = self.weights(flat, i + 1)
            if scheme == "glorot":
                r = np.sqrt(6.0 / (n_in + n_out))
                W[...] = rng.uniform(-r, r, size=(n_out, n_in))
            elif scheme == "he":
                W[...] = rng.normal(0.0, np.sqrt(2.0 / n_in), size=(n_out, n_in))
            else:  # validated by the caller
                raise ValueError(f"init: unknown scheme {scheme!r}")
            self.biases(flat, i + 1)[...] = 0.0
        return flat

    def __repr__(self):
        return f"Layout(sizes={list(self.sizes)}, n_params={self.n_params})"
