using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using LaPerm.Core.Backend;

namespace LaPerm.Cpu;

// Elementwise ops: the vector and scalar paths perform the same IEEE operations in the same
// order (no fused multiply-add), so a result never depends on where a chunk boundary falls.
public sealed partial class CpuBackend
{
    public void ReluForward(Tensor<float> x, Tensor<float> y)
    {
        var yData = Own(y, nameof(y)).Data;
        var xData = Data(x, nameof(x), y.Length);
        _partition.For(yData.Length, ElementwiseChunk, (xData, yData), static (s, _, start, end) =>
        {
            var xs = s.xData.AsSpan(start, end - start);
            var ys = s.yData.AsSpan(start, end - start);
            int i = 0;
            if (Vector256.IsHardwareAccelerated)
            {
                for (; i <= ys.Length - 8; i += 8)
                {
                    var v = Vector256.Create(xs.Slice(i, 8));
                    // NaN passes (as TensorFlow's relu): zeroing it would hide a diverged layer from the loss guard.
                    Vector256.ConditionalSelect(Vector256.LessThanOrEqual(v, Vector256<float>.Zero), Vector256<float>.Zero, v).CopyTo(ys.Slice(i, 8));
                }
            }
            for (; i < ys.Length; i++) ys[i] = xs[i] <= 0f ? 0f : xs[i];
        });
    }

    public void ReluBackward(Tensor<float> y, Tensor<float> dy, Tensor<float> dx)
    {
        var dxData = Own(dx, nameof(dx)).Data;
        var yData = Data(y, nameof(y), dx.Length);
        var dyData = Data(dy, nameof(dy), dx.Length);
        _partition.For(dxData.Length, ElementwiseChunk, (yData, dyData, dxData), static (s, _, start, end) =>
        {
            var ys = s.yData.AsSpan(start, end - start);
            var dys = s.dyData.AsSpan(start, end - start);
            var dxs = s.dxData.AsSpan(start, end - start);
            int i = 0;
            if (Vector256.IsHardwareAccelerated)
            {
                for (; i <= dxs.Length - 8; i += 8)
                {
                    var keep = Vector256.GreaterThan(Vector256.Create(ys.Slice(i, 8)), Vector256<float>.Zero);
                    Vector256.ConditionalSelect(keep, Vector256.Create(dys.Slice(i, 8)), Vector256<float>.Zero).CopyTo(dxs.Slice(i, 8));
                }
            }
            for (; i < dxs.Length; i++) dxs[i] = ys[i] > 0f ? dys[i] : 0f;
        });
    }

    public void DropoutForward(float rate, ulong seed, Tensor<float> x, Tensor<float> y, Tensor<byte> mask)
    {
        CheckRate(rate);
        ulong step = (ulong)_step.Step;
        var yData = Own(y, nameof(y)).Data;
        var xData = Data(x, nameof(x), y.Length);
        var maskData = Data(mask, nameof(mask), y.Length);
        float scale = 1f / (1f - rate);
        // DropoutRandom.Uniform(seed, step, i) with its per-call stream hoisted out of the loop
        // (the tests check the mask against DropoutRandom.Uniform element by element).
        ulong stream = DropoutRandom.Mix(seed ^ (step * Golden));
        _partition.For(yData.Length, 8192, (xData, yData, maskData, rate, scale, stream), static (s, _, start, end) =>
        {
            for (int i = start; i < end; i++)
            {
                float uniform = (DropoutRandom.Mix(s.stream + ((uint)i + 1UL) * Golden) >> 40) * (1.0f / 16777216.0f);
                int keep = uniform >= s.rate ? 1 : 0;   // a flag, not a branch: the mask is random
                s.maskData[i] = (byte)keep;
                s.yData[i] = KeepOrZero(s.xData[i] * s.scale, keep);
            }
        });
    }

    private const ulong Golden = 0x9E3779B97F4A7C15UL;

    /// <summary>value when keep is 1, +0.0 when keep is 0, without a branch (random masks defeat branch prediction).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float KeepOrZero(float value, int keep) => BitConverter.Int32BitsToSingle(BitConverter.SingleToInt32Bits(value) & -keep);

    public void DropoutBackward(float rate, Tensor<float> dy, Tensor<byte> mask, Tensor<float> dx)
    {
        CheckRate(rate);
        var dxData = Own(dx, nameof(dx)).Data;
        var dyData = Data(dy, nameof(dy), dx.Length);
        var maskData = Data(mask, nameof(mask), dx.Length);
        float scale = 1f / (1f - rate);
        _partition.For(dxData.Length, ElementwiseChunk, (dyData, maskData, dxData, scale), static (s, _, start, end) =>
        {
            var dx = s.dxData.AsSpan(start, end - start);
            var dy = s.dyData.AsSpan(start, end - start);
            var mask = s.maskData.AsSpan(start, end - start);
            for (int i = 0; i < dx.Length; i++) dx[i] = KeepOrZero(dy[i] * s.scale, mask[i]);
        });
    }

    private static void CheckRate(float rate)
    {
        if (!(rate >= 0f && rate < 1f)) throw new ArgumentOutOfRangeException(nameof(rate), $"dropout rate must be in [0, 1), got {rate}");
    }

    public void SoftmaxCrossEntropy(int batch, int classes, Tensor<float> logits, Tensor<int> labels,
        Tensor<float> dLogits, Tensor<float> lossAndCorrect)
    {
        if (batch <= 0 || classes <= 0) throw new ArgumentException($"batch and classes must be positive, got {batch}, {classes}");
        var logitData = Data(logits, nameof(logits), (long)batch * classes);
        var labelData = DataAtLeast(labels, nameof(labels), batch);
        var gradientData = Data(dLogits, nameof(dLogits), (long)batch * classes);
        var totals = DataAtLeast(lossAndCorrect, nameof(lossAndCorrect), 2);
        for (int n = 0; n < batch; n++)
            if ((uint)labelData[n] >= (uint)classes)
                throw new ArgumentException($"labels[{n}] = {labelData[n]} is outside [0, {classes})", nameof(labels));
        // Per-example loss (slot 2n) and hit (slot 2n+1), summed afterwards in example order.
        var perExample = _gathered.Get(2 * batch);
        _partition.For(batch, 16, (logitData, labelData, gradientData, perExample, batch, classes), static (s, _, start, end) =>
        {
            for (int n = start; n < end; n++)
            {
                var row = s.logitData.AsSpan(n * s.classes, s.classes);
                var gradient = s.gradientData.AsSpan(n * s.classes, s.classes);
                int best = 0;
                for (int j = 1; j < row.Length; j++)
                    if (row[j] > row[best]) best = j;
                double max = row[best], sum = 0;
                // SoftmaxMath, not Math.Exp/Log: the GPU computes the very same (loss.cu).
                for (int j = 0; j < row.Length; j++) sum += SoftmaxMath.ExpOfNonPositive(row[j] - max);
                int label = s.labelData[n];
                for (int j = 0; j < row.Length; j++)
                    gradient[j] = (float)((SoftmaxMath.ExpOfNonPositive(row[j] - max) / sum - (j == label ? 1.0 : 0.0)) / s.batch);
                // (max - label logit) first: with logits of 1e20 the log of the sum (>= 1) would vanish in max.
                s.perExample[2 * n] = (float)((max - row[label]) + SoftmaxMath.Log(sum));
                // A row with a NaN logit (NaN sum and loss) is no hit, wherever the NaN sits (it never wins the arg-max).
                s.perExample[2 * n + 1] = best == label && !double.IsNaN(sum) ? 1f : 0f;
            }
        });
        double loss = 0, correct = 0;
        for (int n = 0; n < batch; n++)
        {
            loss += perExample[2 * n];
            correct += perExample[2 * n + 1];
        }
        totals[0] += (float)loss;
        totals[1] += (float)correct;
    }

    public void AdamUpdate(AdamParameters parameters, Tensor<float> w, Tensor<float> g, Tensor<float> m, Tensor<float> v)
    {
        if (_step.AdamT < 1) throw new InvalidOperationException($"Adam step t must be at least 1, got {_step.AdamT} (call BeginStep first)");
        if (StepSkipped) return;   // the non-finite guard leaves this step out
        var wData = Own(w, nameof(w)).Data;
        var gData = Data(g, nameof(g), w.Length);
        var mData = Data(m, nameof(m), w.Length);
        var vData = Data(v, nameof(v), w.Length);
        // Steps skipped since the guard's record was last taken do not count in t.
        float learningRateT = parameters.LearningRateAt(_step.LearningRate, _step.AdamT - _skipped.Count);
        var state = new AdamState(wData, gData, mData, vData, learningRateT, parameters.Beta1, parameters.Beta2, parameters.Epsilon);
        _partition.For(wData.Length, ElementwiseChunk, state, static (s, _, start, end) => AdamRange(s, start, end));
    }

    private sealed record AdamState(float[] W, float[] G, float[] M, float[] V, float LearningRateT, float Beta1, float Beta2, float Epsilon);

    private static void AdamRange(AdamState s, int start, int end)
    {
        float oneMinusBeta1 = 1f - s.Beta1, oneMinusBeta2 = 1f - s.Beta2;
        var w = s.W.AsSpan(start, end - start);
        var g = s.G.AsSpan(start, end - start);
        var m = s.M.AsSpan(start, end - start);
        var v = s.V.AsSpan(start, end - start);
        int i = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            var b1 = Vector256.Create(s.Beta1);
            var b2 = Vector256.Create(s.Beta2);
            var c1 = Vector256.Create(oneMinusBeta1);
            var c2 = Vector256.Create(oneMinusBeta2);
            var lr = Vector256.Create(s.LearningRateT);
            var eps = Vector256.Create(s.Epsilon);
            for (; i <= w.Length - 8; i += 8)
            {
                var gv = Vector256.Create(g.Slice(i, 8));
                var mv = b1 * Vector256.Create(m.Slice(i, 8)) + c1 * gv;
                var vv = b2 * Vector256.Create(v.Slice(i, 8)) + c2 * gv * gv;
                var wv = Vector256.Create(w.Slice(i, 8)) - lr * mv / (Vector256.Sqrt(vv) + eps);
                mv.CopyTo(m.Slice(i, 8));
                vv.CopyTo(v.Slice(i, 8));
                wv.CopyTo(w.Slice(i, 8));
            }
        }
        for (; i < w.Length; i++)
        {
            float gi = g[i];
            float mi = s.Beta1 * m[i] + oneMinusBeta1 * gi;
            float vi = s.Beta2 * v[i] + oneMinusBeta2 * gi * gi;
            m[i] = mi;
            v[i] = vi;
            w[i] = w[i] - s.LearningRateT * mi / (MathF.Sqrt(vi) + s.Epsilon);
        }
    }

    public void SgdMomentumUpdate(float momentum, Tensor<float> w, Tensor<float> g, Tensor<float> velocity)
    {
        if (StepSkipped) return;   // the non-finite guard leaves this step out
        float learningRate = _step.LearningRate;
        var wData = Own(w, nameof(w)).Data;
        var gData = Data(g, nameof(g), w.Length);
        var velocityData = Data(velocity, nameof(velocity), w.Length);
        _partition.For(wData.Length, ElementwiseChunk, (wData, gData, velocityData, learningRate, momentum), static (s, _, start, end) =>
        {
            var w = s.wData.AsSpan(start, end - start);
            var g = s.gData.AsSpan(start, end - start);
            var vel = s.velocityData.AsSpan(start, end - start);
            int i = 0;
            if (Vector256.IsHardwareAccelerated)
            {
                var mu = Vector256.Create(s.momentum);
                var lr = Vector256.Create(s.learningRate);
                for (; i <= w.Length - 8; i += 8)
                {
                    var vv = mu * Vector256.Create(vel.Slice(i, 8)) - lr * Vector256.Create(g.Slice(i, 8));
                    vv.CopyTo(vel.Slice(i, 8));
                    (Vector256.Create(w.Slice(i, 8)) + vv).CopyTo(w.Slice(i, 8));
                }
            }
            for (; i < w.Length; i++)
            {
                float vi = s.momentum * vel[i] - s.learningRate * g[i];
                vel[i] = vi;
                w[i] += vi;
            }
        });
    }
}
