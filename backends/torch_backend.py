"""PyTorch backend (CPU or CUDA): every :class:`hebbcore.ops.Ops` method written natively.

Convolutions and their weight-gradients go to ATen (cuDNN / oneDNN), so a
Hebbian update costs what one backward pass of the layer costs.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from hebbcore.errors import BackendUnavailable
from hebbcore.ops import Ops, per_kernel

from . import cpu_kernels
from .numpy_backend import NumpyOps


class TorchOps(Ops):
    name = "torch"
    xp = None
    #: The winners' patches are copied by numpy (one thread) when torch has at most this many threads, else by
    #: torch's own copy, which uses them all (measured in commit e516acb: ``benchmarks/winner_sums.py``).
    host_copy_max_threads: ClassVar[int] = 1
    #: The winners' patch rows copied (then added to their winners' sums) at a time on the CPU: a chunk that
    #: the copy leaves in cache for ``index_add_`` (measured in commit c3c9e66: ``benchmarks/winner_sums.py``).
    winner_rows_max_bytes: ClassVar[int] = 4 << 20

    def __init__(self, device: str | None = None):
        try:
            import torch
        except ImportError as exc:
            raise BackendUnavailable(f"backend 'torch' is unavailable: torch is not installed ({exc})") from None
        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if str(device).startswith("cuda") and not torch.cuda.is_available():
            raise BackendUnavailable(f"backend 'torch' cannot use device {device!r}: no CUDA device is visible")
        try:
            dev = torch.device(device)
        except RuntimeError as exc:
            raise BackendUnavailable(f"backend 'torch': bad device {device!r} ({exc})") from None
        self.torch = torch
        self.F = torch.nn.functional
        self.dev = dev
        # oneDNN convolves channels-last (NHWC) memory faster; activations then stay channels-last through the
        # element-wise ops, pooling and batch-norm. cuDNN paths keep the default NCHW layout.
        self._memory_format = torch.channels_last if dev.type == "cpu" else torch.contiguous_format
        self._host = NumpyOps()  # numpy on the same memory, where it is faster than ATen on the CPU
        self._host_dtypes = (torch.float32, torch.float64)
        super().__init__(str(dev))

    # transfer
    def asarray(self, a, dtype: str = "float32"):
        if isinstance(a, self.torch.Tensor):
            return a.to(device=self.dev, dtype=getattr(self.torch, dtype))
        return self.torch.as_tensor(np.asarray(a, dtype=dtype), device=self.dev)

    def to_numpy(self, a) -> np.ndarray:
        return a.detach().cpu().numpy()

    def synchronize(self) -> None:
        if self.dev.type == "cuda":
            self.torch.cuda.synchronize(self.dev)

    # reductions
    def sum(self, a, axis=None):
        return a.sum() if axis is None else a.sum(dim=axis)

    def sqrt(self, a):
        return self.torch.sqrt(a)

    def relu(self, a, out=None):
        if out is None:
            return self.torch.relu(a)
        # in place: 0.54 against 1.06 ms on the paper conv1's 4.8M cosines, 2 threads
        return a.relu_() if out is a else self.torch.clamp_min(a, 0, out=out)

    def power(self, a, p):
        return a if p == 1.0 else a**p  # torch's pow is vectorised; exp(p·log a) is two passes, several times slower

    def where(self, cond, a, b):
        return self.torch.where(cond, a, b)

    def isfinite_all(self, a) -> bool:
        # max |a| is NaN or inf exactly when an element is: two reductions, against isfinite's passes and its
        # bool temporary (conv3 of SoftHebb's net, 5.3M floats: 0.47 against 6.1 ms)
        if not a.is_floating_point():  # integers and bools are finite (max_abs negates, which bools refuse)
            return True
        return a.numel() == 0 or bool(self.torch.isfinite(self.max_abs(a)))

    def cosine_argmax(self, dot, w_norm, x_norm, eps, allowed=None):
        if self._kernels_for(dot):
            d, wn, xn = (t.detach().numpy() for t in (dot, w_norm, x_norm))
            mask = None if allowed is None else allowed.numpy()
            fused = cpu_kernels.cosine_argmax_of(d, wn, xn, eps, mask, self._threads(), openmp=True)
            if fused is not None:
                return tuple(self.torch.from_numpy(a) for a in fused)
        return super().cosine_argmax(dot, w_norm, x_norm, eps, allowed)

    # The kernels add Σ y in the same pass whether asked or not; they write through numpy, past autograd, so a y
    # that needs a gradient keeps the array code.
    def winner_signed_sums(self, y, u, with_sum=True):
        if self._kernels_for(y) and self._kernels_for(u) and not y.requires_grad:
            fused = cpu_kernels.winner_signed_sums_of(y.detach().numpy(), u.detach().numpy(), self._threads(), True)
            if fused is not None:  # y itself holds the signed coefficients
                return y, self.torch.from_numpy(fused[1]), self.torch.from_numpy(fused[2])
        return super().winner_signed_sums(y, u, with_sum)

    def ranked_coefficients(self, u, rank, delta, with_sum=True):
        if self._kernels_for(u):
            fused = cpu_kernels.ranked_of(u.detach().numpy(), rank, delta, self._threads(), True)
            if fused is not None:
                y, y_sum, yu_sum, ranks = fused
                t = self.torch.from_numpy
                return t(y), t(y_sum), t(yu_sum), (t(ranks[0]), t(ranks[1]))
        return super().ranked_coefficients(u, rank, delta, with_sum)

    def _kernels_for(self, a) -> bool:
        """True when the compiled CPU kernels take ``a``: a float tensor on the CPU and Numba enabled."""
        return a.device.type == "cpu" and a.dtype in self._host_dtypes and cpu_kernels.enabled()

    def _threads(self) -> int:
        return self.torch.get_num_threads()

    def amax(self, a, axis):
        return a.amax(dim=axis, keepdim=True)

    def kernel_norms(self, w):
        return self.torch.linalg.vector_norm(w, dim=tuple(range(1, w.ndim)))  # one pass, no w² temporary

    def minus_per_kernel(self, a, v, w):
        return self.torch.addcmul(a, per_kernel(v, w.ndim), w, value=-1)  # one pass

    def decay_and_max_abs(self, a, v, w):
        if self._kernels_for(a) and self._kernels_for(w) and not a.requires_grad:
            args = (a.detach().numpy(), v.detach().cpu().numpy(), w.detach().numpy())
            fused = cpu_kernels.decay_and_max_abs_of(*args, self._threads(), True)
            if fused is not None:
                return a, self.torch.from_numpy(fused[1])  # a holds the decayed sums
        return super().decay_and_max_abs(a, v, w)

    def kernel_affine(self, w, a, s, b, out=None):
        torch = self.torch
        dest = torch.empty_like(s) if out is None else out  # s's layout (channels-last from a CPU conv)
        if not w.shape == s.shape == dest.shape or not w.dtype == s.dtype == dest.dtype:
            raise ValueError(f"kernel_affine: w {tuple(w.shape)} {w.dtype}, s {tuple(s.shape)} {s.dtype} and out "
                             f"{tuple(dest.shape)} {dest.dtype} must have one shape and dtype")  # fmt: skip
        a, b = (float(v) if _cpu_scalar(v) else v for v in (a, b))  # a Python float takes torch's scalar paths
        ak, bk = per_kernel(a, s.ndim), per_kernel(b, s.ndim)
        if w is s:
            return torch.mul(w, ak + bk, out=dest)
        if any(dest is not t and dest.untyped_storage().data_ptr() == t.untyped_storage().data_ptr() for t in (w, s)):
            return dest.copy_(self.kernel_affine(w, a, s, b))  # out shares memory with w or s as another view
        if dest is s:  # s is read once, scaled in place first
            s.mul_(bk)
            return s.add_(w, alpha=a) if isinstance(a, float) else s.addcmul_(w, ak)
        if isinstance(a, float) and a == 1.0:  # one pass
            return torch.add(w, s, alpha=b, out=dest) if isinstance(b, float) else torch.addcmul(w, s, bk, out=dest)
        dest = torch.mul(w, ak, out=dest)  # two passes
        return dest.add_(s, alpha=b) if isinstance(b, float) else dest.addcmul_(s, bk)

    def max_abs(self, a):
        flat = _in_memory_order(a)
        return self.torch.maximum(flat.amax(), flat.amin().neg())

    def argmax(self, a, axis):
        if a.device.type == "cpu" and a.dtype in self._host_dtypes:  # numpy's is faster here (see one_hot_argmax)
            return self.torch.from_numpy(self._host.argmax(a.detach().numpy(), axis))
        return a.argmax(dim=axis)

    def concatenate(self, arrays, axis=0):
        return self.torch.cat(list(arrays), dim=axis)

    def one_hot(self, index, n, axis=1, dtype="float32"):
        flat = index.reshape(-1)
        hot = self.torch.zeros(flat.shape[0] * n, dtype=getattr(self.torch, dtype), device=index.device)
        if flat.shape[0]:
            hot[flat + n * self.torch.arange(flat.shape[0], device=index.device)] = 1
        return hot.reshape(tuple(index.shape) + (n,)).movedim(-1, axis)

    def winner_counts(self, index, n):
        flat = index.reshape(-1)
        if flat.device.type == "cpu":  # numpy's: the paper net's five layers, 2 threads, 0.18-0.20 against 0.43-0.66 ms
            return self.torch.from_numpy(self._host.winner_counts(flat.numpy(), n))
        return self._counts_native(flat, n)

    def _counts_native(self, flat, n):
        """Winner counts by one ``index_add_`` of ones: CUDA's ``bincount`` reads the largest index back to the
        host to size its output, a device sync per layer and step; this does not (sums of ones are exact)."""
        torch = self.torch
        ones = torch.ones(flat.shape[0], dtype=torch.float32, device=flat.device)
        return torch.zeros(n, dtype=torch.float32, device=flat.device).index_add_(0, flat, ones)

    def one_hot_argmax(self, a, axis=1):
        if a.device.type == "cpu" and a.dtype in self._host_dtypes:
            # On the CPU numpy's argmax along a contiguous axis is ~2.5x torch's, and its zero fill is
            # cheaper: the same one-hot through a numpy view of the same memory (benchmarks/one_hot.py).
            hot = self._host.one_hot_argmax(a.detach().numpy(), axis=axis)
            return self.torch.from_numpy(hot)
        return self._one_hot_native(a, axis)

    def _one_hot_native(self, a, axis=1):
        idx = a.argmax(dim=axis, keepdim=True)
        return self.torch.zeros_like(a).scatter_(axis, idx, 1.0)

    def take_rows(self, table, index):
        return table[index]

    def broadcast_to(self, a, shape):
        return a.expand(shape)

    # layers
    def linear(self, x, w):
        return x @ w.T

    def linear_weight_sums(self, x, g):
        return g.T @ x

    def adds_winner_rows(self, x, kind):
        return x.device.type == "cpu"  # Numba's kernels or index_add_; CUDA keeps the one-hot product

    def linear_winner_sums(self, x, index, n_kernels):
        if self._kernels_for(x):
            sums = cpu_kernels.linear_winner_sums(x.detach().numpy(), index.numpy(), n_kernels, self._threads(), True)
            return self.torch.from_numpy(sums)
        if x.device.type != "cpu":  # CUDA's index_add_ adds in no fixed order: keep the product there
            hot = self.one_hot(index, n_kernels, axis=1, dtype=self.dtype_name(x.dtype))
            return self.linear_weight_sums(x, hot)
        # each row added to its winner's: N·D additions instead of the one-hot product's N·D·K
        return self.torch.zeros((n_kernels, x.shape[1]), dtype=x.dtype).index_add_(0, index.reshape(-1), x)

    def _layout(self, t):
        return t.contiguous(memory_format=self._memory_format)

    def conv2d(self, x, w, stride=1):
        return self.F.conv2d(self._layout(x), self._layout(w), stride=stride)

    def conv2d_weight_sums(self, x, g, kernel_size, stride=1):
        n, k, ho, wo = g.shape
        c = x.shape[1]
        if ho * wo > 1 and g.stride(2) == 0 and g.stride(3) == 0:
            # g constant over positions (a teacher signal expanded over them): Σ_p g·patch_p = g·Σ_p patch_p
            return self._weight_sums_constant(x, g[:, :, 0, 0], kernel_size, stride, ho, wo)
        kh, kw = kernel_size
        # Only the rows/columns some window covers take part; cropping the rest keeps oneDNN off its
        # stride > kernel edge cases (a CI run once saw a wrong, non-reproducible sum with 1x1 kernels, stride 2).
        x = x[:, :, : stride * (ho - 1) + kh, : stride * (wo - 1) + kw]
        if kh == kw == 1:  # a 1x1 kernel's weight-gradient is one matrix product over the sampled pixels
            xs = x[:, :, ::stride, ::stride].reshape(n, c, ho * wo)
            return self.torch.einsum("nkp,ncp->kc", g.reshape(n, k, ho * wo), xs).reshape(k, c, 1, 1)
        # left in the layout oneDNN gives (channels-last on the CPU): the weight it updates is kept in it too
        return self.torch.nn.grad.conv2d_weight(self._layout(x), (k, c, kh, kw), self._layout(g), stride=stride)

    def _weight_sums_constant(self, x, g0, kernel_size, stride, ho, wo):
        """``Σ_n g0[n, k] · Σ_p patch_p(x[n])``: per-sample window sums, then one small matrix product."""
        kh, kw = kernel_size
        n, c = x.shape[:2]
        if stride == 1:
            sums = self.F.avg_pool2d(x, (ho, wo), stride=1) * float(ho * wo)  # (N, C, kh, kw)
        else:
            span_h, span_w = stride * (ho - 1) + 1, stride * (wo - 1) + 1
            sums = self.torch.stack(
                [
                    self.torch.stack(
                        [x[:, :, a : a + span_h : stride, b : b + span_w : stride].sum(dim=(2, 3)) for b in range(kw)],
                        dim=-1,
                    )
                    for a in range(kh)
                ],
                dim=-2,
            )
        return (g0.T @ sums.reshape(n, -1)).reshape(g0.shape[1], c, kh, kw)

    def conv2d_winner_sums(self, x, index, n_kernels, kernel_size, stride=1):
        # Patches of a bounded chunk of samples copied from a strided view, each row added to its winner's
        # sum by index_add_ (one pass over the rows, however many kernels).
        torch = self.torch
        n, c, h, wd = x.shape
        kh, kw = kernel_size
        ho, wo = index.shape[1:]
        xh = x.permute(0, 2, 3, 1).contiguous()
        if self._kernels_for(x):
            sums = cpu_kernels.winner_sums(
                xh.detach().numpy(), index.numpy(), n_kernels, kh, kw, stride, self._threads(), openmp=True
            )
            return self.torch.from_numpy(sums.transpose(0, 3, 1, 2))  # channels-last, as conv2d takes weights
        d = kh * kw * c
        out = torch.zeros((n_kernels, d), dtype=x.dtype, device=x.device)
        if (
            x.device.type == "cpu"
            and x.dtype in self._host_dtypes
            and torch.get_num_threads() <= self.host_copy_max_threads
        ):
            for s, e, cols in self._host._patch_chunks(
                xh.detach().numpy(), kh, kw, stride, ho, wo, max_bytes=self.winner_rows_max_bytes
            ):
                out.index_add_(0, index[s:e].reshape(-1), torch.from_numpy(cols))
            return out.reshape(n_kernels, kh, kw, c).permute(0, 3, 1, 2).contiguous()
        return self._winner_sums_native(xh, index, out, kernel_size, stride)

    def _winner_sums_native(self, xh, index, out, kernel_size, stride):
        """The winners' patch sums with torch ops only (CUDA, CPU with several threads, CPU dtypes numpy lacks).

        ``xh`` is the channels-last input; the sums are added to ``out`` ``(K, kh·kw·C)``.
        """
        n, h, wd, c = xh.shape
        kh, kw = kernel_size
        ho, wo = index.shape[1:]
        d = kh * kw * c
        n_kernels = out.shape[0]
        view = xh.as_strided((n, ho, wo, kh, kw * c), (h * wd * c, stride * wd * c, stride * c, wd * c, 1))
        limit = self.winner_rows_max_bytes if xh.device.type == "cpu" else 256 << 20
        m = max(1, min(n, limit // max(ho * wo * d * xh.element_size(), 1)))
        for s in range(0, n, m):
            e = min(n, s + m)
            rows = view[s:e].reshape((e - s) * ho * wo, d)  # a copy: the strided view is not a matrix
            out.index_add_(0, index[s:e].reshape(-1), rows)
        return out.reshape(n_kernels, kh, kw, c).permute(0, 3, 1, 2).contiguous()

    def patch_sq_norms(self, x, kernel_size, stride=1):
        s = (x * x).sum(dim=1, keepdim=True)
        kh, kw = kernel_size
        return self.F.avg_pool2d(s, (kh, kw), stride=stride) * float(kh * kw)

    def max_pool2d(self, x, kernel_size, stride):
        return self.F.max_pool2d(x, kernel_size, stride)

    def avg_pool2d(self, x, kernel_size, stride):
        return self.F.avg_pool2d(x, kernel_size, stride)

    def pad2d(self, x, padding, mode="zeros"):
        return self.F.pad(x, (padding,) * 4, mode={"zeros": "constant"}.get(mode, mode))

    def batch_moments(self, x):
        dims = (0,) if x.ndim == 2 else (0, 2, 3)
        if x.device.type == "cpu":  # two plain reductions are ~4x faster than var_mean on the CPU here
            mean = x.mean(dim=dims)
            return mean, (x - self._expand(mean, x.ndim)).square_().mean(dim=dims)
        var, mean = self.torch.var_mean(x, dim=dims, unbiased=False)
        return mean, var

    def batch_norm(self, x, mean, var, gamma, beta, eps):
        scale = gamma * self.torch.rsqrt(var + eps)
        shift = beta - mean * scale
        return self.torch.addcmul(self._expand(shift, x.ndim), x, self._expand(scale, x.ndim))  # one pass over x

    # rule primitives
    def _by_position(self, y):
        return y if y.ndim == 2 else y.permute(0, 2, 3, 1).reshape(-1, y.shape[1])  # a view of channels-last y

    #: Smallest batch whose Gram matrix (``y`` from a convolution, on the CPU) oneDNN's 1x1 weight-gradient computes.
    gram_conv_min_batch: ClassVar[int] = 32

    def _gram_by_onednn(self, y):
        """True where the Gram matrix of ``y`` goes to oneDNN's 1x1 weight-gradient: its AVX-512 kernel beats MKL's
        GEMM, which takes its AVX2 path on AMD cores, even on the whole G against the lower triangle's blocks (HPCA
        net at batch 64, conv1-conv3 1.3-1.9x, conv4 even; ``benchmarks/gram.py``). Below the batch of
        :attr:`gram_conv_min_batch` oneDNN falls back to a GEMM of its own (batch 10: 0.7-0.9x at one thread,
        though 1.0-1.3x at two)."""
        positions = y.shape[2] * y.shape[3] if y.ndim == 4 else 0
        return positions > 0 and y.device.type == "cpu" and y.shape[0] >= self.gram_conv_min_batch

    def kernel_gram(self, y):
        if self._gram_by_onednn(y):
            k = y.shape[1]
            ys = self._layout(y)
            return self.torch.nn.grad.conv2d_weight(ys, (k, k, 1, 1), ys).reshape(k, k)
        return super().kernel_gram(y)

    def _gram_rows(self, y):
        if self._gram_by_onednn(y):
            return super()._gram_rows(y)  # the whole G, sliced
        ym = self._by_position(y)  # no syrk in torch's matmul: each block's rows only up to the diagonal
        return lambda a0, a1: ym[:, a0:a1].T @ ym[:, :a1]

    @staticmethod
    def _stride(a, axis):
        return a.stride(axis)

    @staticmethod
    def _permute(a, axes):
        return a.permute(axes)

    def _tril(self, a, k):
        return self.torch.tril(a, diagonal=k)

    def top_k_mask(self, a, k, axis=1):
        if k <= 4:  # k passes of argmax (first index on ties) beat a full sort
            mask, work = self.torch.zeros_like(a), a.clone()
            for _ in range(k):
                idx = work.argmax(dim=axis, keepdim=True)
                mask.scatter_(axis, idx, 1.0)
                work.scatter_(axis, idx, float("-inf"))
            return mask
        order = self.torch.argsort(a, dim=axis, descending=True, stable=True)
        return self.torch.zeros_like(a).scatter_(axis, order.narrow(axis, 0, k), 1.0)

    def softmax(self, a, axis=1):
        rows = a.movedim(axis, -1)
        if rows.is_contiguous():  # a channels-last axis: torch's last-axis kernel is 2.3x its strided one on the CPU
            y = self.torch.softmax(rows, dim=-1).movedim(-1, axis)
        else:
            y = self.torch.softmax(a, dim=axis)
        # no subnormals (see Ops.softmax): threshold_ zeroes x <= the float just below the smallest normal, keeps
        # NaN, and is one pass (masked_fill_ of a comparison: 25x as long)
        return self.F.threshold_(y, self._below_normal(y.dtype), 0.0)

    def _below_normal(self, dtype) -> float:
        """The largest float of ``dtype`` below its smallest normal one (cached per dtype)."""
        cache = self.__dict__.setdefault("_below", {})
        if dtype not in cache:
            tiny, zero = (self.torch.tensor(v, dtype=dtype) for v in (self.torch.finfo(dtype).tiny, 0.0))
            cache[dtype] = float(self.torch.nextafter(tiny, zero))
        return cache[dtype]

    # fused response
    def _scalar(self, value, dtype):
        """A cached 0-d tensor on this device (no fill kernel per call)."""
        cache = self.__dict__.setdefault("_scalars", {})
        key = (float(value), dtype)
        if key not in cache:
            cache[key] = self.torch.full((), float(value), dtype=dtype, device=self.dev)
        return cache[key]

    def solve(self, a, b):
        return self.torch.linalg.solve(a, b)

    def cosine(self, dot, w_norm, x_norm, eps):
        den = self.torch.empty_like(dot)  # the memory layout of dot
        self.torch.addcmul(self._scalar(eps, dot.dtype), w_norm, x_norm, out=den)
        return self.torch.div(dot, den, out=den)


def _cpu_scalar(v) -> bool:
    """True for a number, or a one-element tensor in host memory, which ``float()`` reads without a device sync."""
    import torch

    return isinstance(v, (int, float, np.generic)) or (
        isinstance(v, torch.Tensor) and v.device.type == "cpu" and v.numel() == 1
    )


def _in_memory_order(a):
    """``a``'s elements as a 1-d tensor, a view where the memory allows (a channels-last 4-d tensor too): torch
    reduces a strided 4-d tensor to one value about 10x slower than the same memory seen flat."""
    return (a.permute(0, 2, 3, 1) if a.ndim == 4 and not a.is_contiguous() else a).reshape(-1)
