"""A third-party rule plugin, as small as one can be: ``sign_hebb``.

y = sign(w·x) clamped to {0, 1} (a kernel fires when it points towards the
patch), and Δw = η·y·(x − w) aggregated as the spec says.
"""

from hebbcore import hookimpl
from hebbcore.interfaces import LearningRule


class SignHebb(LearningRule):
    name = "sign_hebb"

    def post_synaptic(self, ctx):
        return (ctx.dot > 0) * ctx.ops.asarray(1.0)  # float32 on every backend (a bare 1.0 is float64 in numpy)

    def update_sums(self, ctx, y):
        coef = ctx.coefficient_sum(y)
        return ctx.input_correlation(y) - ctx.per_kernel(coef) * ctx.w, coef


@hookimpl
def hebbcore_register_rules():
    return [SignHebb]
