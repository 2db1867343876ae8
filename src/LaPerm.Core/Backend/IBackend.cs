using LaPerm.Core.Data;

namespace LaPerm.Core.Backend;

/// <summary>
/// The op-level contract every device implements (<c>cpu</c>, <c>cuda</c>, <c>emu</c>).
/// The model, the LaPerm schedule and the training loop are written once against it.
///
/// Conventions, shared by every implementation and checked backend against backend:
/// <list type="bullet">
/// <item>All tensors are dense row-major; activations are NCHW (dense activations are [N, C]).</item>
/// <item>Ops are enqueued in order on the backend's one stream; only <see cref="Download{T}"/>,
/// <see cref="Synchronize"/> and <see cref="TakeNonFinite"/> wait for them. Scalars that come back
/// (loss, correct count, the non-finite guard's record) are written on the device, and values that
/// change per step are read from the step block (<see cref="BeginStep"/>), so a step never has to
/// wait on the host and can be captured once and replayed (<see cref="BeginCapture"/>).</item>
/// <item>"Channel" ops (bias, batch-norm) view a tensor as [N, C, S] with S = product of the
/// dimensions after the channel axis (1 for dense activations).</item>
/// <item>Gradient outputs are overwritten unless an op says it accumulates.</item>
/// </list>
/// </summary>
public interface IBackend : IDisposable
{
    /// <summary>"cpu", "cuda" ("cuda:N" on GPU N > 0) or "emu": the device as --device names it.</summary>
    string Name { get; }

    /// <summary>One line describing the device (CPU model and threads, GPU name, ...).</summary>
    string Description { get; }

    // ---- memory -------------------------------------------------------------------------

    /// <summary>A new tensor; contents are zero.</summary>
    Tensor<T> Allocate<T>(Shape shape) where T : unmanaged;

    /// <summary>
    /// The same elements under another shape of the same length, without a copy (flatten's
    /// gradient, handed back to a layer that reads channels on axis 1). Valid while
    /// <paramref name="source"/> lives; disposing it frees nothing.
    /// </summary>
    Tensor<T> Reshape<T>(Tensor<T> source, Shape shape) where T : unmanaged;

    void Upload<T>(ReadOnlySpan<T> source, Tensor<T> destination) where T : unmanaged;

    /// <summary>Copies device to host; waits for every op enqueued before it.</summary>
    void Download<T>(Tensor<T> source, Span<T> destination) where T : unmanaged;

    /// <summary>
    /// A reusable readback of <paramref name="length"/> elements that never makes the host wait
    /// (page-locked memory and an event on cuda): for progress readouts while steps are queued.
    /// </summary>
    IAsyncReadback<T> CreateReadback<T>(int length) where T : unmanaged;

    void Copy<T>(Tensor<T> source, Tensor<T> destination) where T : unmanaged;

    void Fill(Tensor<float> destination, float value);

    /// <summary>Waits until every enqueued op has finished.</summary>
    void Synchronize();

    // ---- the step --------------------------------------------------------------------------

    /// <summary>
    /// Sets the per-step scalars every step-dependent op reads (the dropout stream, the
    /// optimizers' learning rate and Adam's t). Enqueued once per step, before the step's ops
    /// and outside any captured graph: on a device it is one tiny kernel that writes the values
    /// (passed by value) into a device-resident block, so it never waits on the host, and a
    /// graph captured once replays correctly at every step. The CPU backend keeps the values.
    /// Ops enqueued before the next BeginStep see these values.
    /// </summary>
    void BeginStep(in StepScalars scalars);

    // The non-finite guard: NaN/Inf policies without a host round trip per step. The backend keeps
    // a record (on a device: a small device struct, cuda/include/laperm/step.cuh) that these ops
    // update in stream order and the host reads only when it wants to (TakeNonFinite).

    /// <summary>
    /// Enqueued after a step's loss: when lossAndCorrect[0] (the accumulated training loss) is NaN
    /// or infinite, either (<paramref name="skipStep"/> false, the stop policy) records
    /// <see cref="StepScalars.Step"/> as the first non-finite step unless one is recorded, after
    /// which the optimizers update nothing until the record is taken; or (skip-step) marks this
    /// step as left out because of its loss.
    /// </summary>
    void GuardLoss(Tensor<float> lossAndCorrect, bool skipStep);

    /// <summary>
    /// Skip-step, after the backward pass, once per parameter in order: a NaN or infinite element
    /// of <paramref name="gradient"/> marks the step as left out (unless its loss already did) and
    /// names the first such parameter index.
    /// </summary>
    void GuardGradient(Tensor<float> gradient, int index);

    /// <summary>destination = backup when this step is marked as left out (running loss, batch-norm statistics).</summary>
    void RestoreIfSkipped(Tensor<float> backup, Tensor<float> destination);

    /// <summary>
    /// Skip-step, after the restores: a step marked as left out is logged for
    /// <see cref="TakeNonFinite"/>. The optimizers skip a marked step, and Adam's t does not count
    /// the logged steps (t = <see cref="StepScalars.AdamT"/> - steps logged since the last take).
    /// </summary>
    void CommitStepGuard();

    /// <summary>What the guard recorded since the last take, then clears it; waits for every enqueued op.</summary>
    NonFiniteReport TakeNonFinite();

    /// <summary>
    /// Whether <see cref="BeginCapture"/> works: the backend can record a sequence of its ops and
    /// replay it with one launch (CUDA graphs on cuda and emu; not on cpu).
    /// </summary>
    bool CanCapture { get; }

    /// <summary>
    /// Starts recording instead of running: the ops enqueued until <see cref="EndCapture"/> are
    /// captured, not executed. Run the same ops once before (a warm-up): scratch buffers and
    /// library handles must not be created while capturing, and no op may wait on the host.
    /// </summary>
    void BeginCapture();

    /// <summary>Stops recording; the result replays the captured ops.</summary>
    ICapturedOps EndCapture();

    /// <summary>
    /// Gives up a capture that failed (an op the capture refused, or <see cref="EndCapture"/>
    /// throwing): leaves capture mode if still in it and drops what was recorded for it, including
    /// ops queued for a batched launch (the optimizer update), so the caller can enqueue the same
    /// ops again and run them eagerly. Does nothing when there is nothing to give up.
    /// </summary>
    void AbandonCapture();

    // ---- linear algebra -----------------------------------------------------------------

    /// <summary>
    /// Row-major C[m,n] = alpha * op(A)[m,k] * op(B)[k,n] + beta * C, op = transpose when the
    /// flag is set (A is stored [k,m] when transposeA). With beta = 0, C is not read.
    /// </summary>
    void Gemm(bool transposeA, bool transposeB, int m, int n, int k, float alpha,
              Tensor<float> a, Tensor<float> b, float beta, Tensor<float> c);

    /// <summary>y[n,c,s] += bias[c] for the [N, C, S] view of y.</summary>
    void AddBias(Tensor<float> y, Tensor<float> bias, int channels);

    /// <summary>dBias[c] = sum over n, s of dy[n,c,s] (overwrites).</summary>
    void BiasGradient(Tensor<float> dy, Tensor<float> dBias, int channels);

    /// <summary>
    /// y = x + alpha * y, elementwise over y's length (residual add with alpha 1; the L2
    /// gradient g + 2 l2 w with y holding w). Not BLAS axpy, which scales x instead.
    /// </summary>
    void ScaleAdd(float alpha, Tensor<float> x, Tensor<float> y);

    /// <summary>y = alpha * y, elementwise, in place (the batch-summed loss's gradient from the mean's).</summary>
    void Scale(float alpha, Tensor<float> y);

    // ---- convolution (NCHW, OIHW) --------------------------------------------------------

    /// <summary>y = conv(x, w); no bias.</summary>
    void ConvForward(ConvGeometry g, Tensor<float> x, Tensor<float> w, Tensor<float> y);

    /// <summary>dx = conv_transpose(dy, w) (overwrites dx).</summary>
    void ConvBackwardData(ConvGeometry g, Tensor<float> dy, Tensor<float> w, Tensor<float> dx);

    /// <summary>dw = correlation of x and dy summed over the batch (overwrites dw).</summary>
    void ConvBackwardFilter(ConvGeometry g, Tensor<float> x, Tensor<float> dy, Tensor<float> dw);

    // ---- pooling ------------------------------------------------------------------------

    /// <summary>Max pool; argmax[i] holds the flat input index chosen for output i (first max wins).</summary>
    void MaxPoolForward(PoolGeometry g, Tensor<float> x, Tensor<float> y, Tensor<int> argmax);

    /// <summary>
    /// dx = 0, then dx[argmax[i]] += dy[i]. x and y are the forward's input and output: a
    /// library pooling (cuDNN) finds the maxima again from them instead of reading argmax.
    /// </summary>
    void MaxPoolBackward(PoolGeometry g, Tensor<float> x, Tensor<float> y, Tensor<float> dy, Tensor<int> argmax, Tensor<float> dx);

    void AvgPoolForward(PoolGeometry g, Tensor<float> x, Tensor<float> y);

    void AvgPoolBackward(PoolGeometry g, Tensor<float> dy, Tensor<float> dx);

    /// <summary>y[n,c] = mean over s of x[n,c,s].</summary>
    void GlobalAvgPoolForward(int batch, int channels, int spatial, Tensor<float> x, Tensor<float> y);

    void GlobalAvgPoolBackward(int batch, int channels, int spatial, Tensor<float> dy, Tensor<float> dx);

    // ---- normalisation --------------------------------------------------------------------

    /// <summary>
    /// Training-mode batch-norm over the [N, C, S] view: per channel mean and biased variance
    /// of the batch; y = gamma * (x - mean) * invStd + beta, invStd = 1/sqrt(var + eps).
    /// Saves mean and invStd for the backward pass and updates running statistics Keras-style:
    /// running = momentum * running + (1 - momentum) * batch (running variance uses the
    /// unbiased batch variance).
    /// </summary>
    void BatchNormForwardTraining(int batch, int channels, int spatial, float epsilon, float momentum,
        Tensor<float> x, Tensor<float> gamma, Tensor<float> beta,
        Tensor<float> runningMean, Tensor<float> runningVariance,
        Tensor<float> savedMean, Tensor<float> savedInvStd, Tensor<float> y);

    /// <summary>y = gamma * (x - runningMean) / sqrt(runningVariance + eps) + beta.</summary>
    void BatchNormForwardInference(int batch, int channels, int spatial, float epsilon,
        Tensor<float> x, Tensor<float> gamma, Tensor<float> beta,
        Tensor<float> runningMean, Tensor<float> runningVariance, Tensor<float> y);

    /// <summary>
    /// Gradients of the training-mode forward (overwrites dx, dGamma, dBeta). epsilon is the
    /// forward's: the gradients use savedInvStd, but cuDNN asks for the same value in both passes.
    /// </summary>
    void BatchNormBackward(int batch, int channels, int spatial, float epsilon,
        Tensor<float> x, Tensor<float> dy, Tensor<float> gamma,
        Tensor<float> savedMean, Tensor<float> savedInvStd,
        Tensor<float> dx, Tensor<float> dGamma, Tensor<float> dBeta);

    // ---- activations, dropout ---------------------------------------------------------------

    /// <summary>y = max(x, 0); x and y may be the same tensor.</summary>
    void ReluForward(Tensor<float> x, Tensor<float> y);

    /// <summary>dx = y &gt; 0 ? dy : 0, with y the forward output; dy and dx may be the same tensor.</summary>
    void ReluBackward(Tensor<float> y, Tensor<float> dy, Tensor<float> dx);

    /// <summary>
    /// Inverted dropout: keep element i when its counter-based uniform
    /// <see cref="DropoutRandom.Uniform(ulong, ulong, uint)"/>(seed, step, i) &gt;= rate, with
    /// step = <see cref="StepScalars.Step"/> of the last <see cref="BeginStep"/>;
    /// kept elements are scaled by 1/(1-rate). mask[i] = 1 for kept, 0 for dropped.
    /// The same (seed, step) gives the same mask on every backend.
    /// </summary>
    void DropoutForward(float rate, ulong seed, Tensor<float> x, Tensor<float> y, Tensor<byte> mask);

    void DropoutBackward(float rate, Tensor<float> dy, Tensor<byte> mask, Tensor<float> dx);

    // ---- loss --------------------------------------------------------------------------------

    /// <summary>
    /// Softmax cross-entropy over logits [N, classes] against integer labels.
    /// Writes dLogits = (softmax - onehot) / N (mean reduction), and
    /// lossAndCorrect[0] += sum of per-example losses, lossAndCorrect[1] += number of
    /// examples whose arg-max (first max wins) equals the label. Accumulating lets a run sum
    /// over many steps without a host round trip.
    /// </summary>
    void SoftmaxCrossEntropy(int batch, int classes, Tensor<float> logits, Tensor<int> labels,
        Tensor<float> dLogits, Tensor<float> lossAndCorrect);

    // ---- optimizers ----------------------------------------------------------------------------

    /// <summary>
    /// One Adam step (Keras form): lr_t = <see cref="AdamParameters.LearningRateAt"/>(lr, t) with lr
    /// = <see cref="StepScalars.LearningRate"/> and t = <see cref="StepScalars.AdamT"/> of the last
    /// <see cref="BeginStep"/>; m = beta1 m + (1-beta1) g; v = beta2 v + (1-beta2) g^2;
    /// w -= lr_t * m / (sqrt(v) + eps).
    /// </summary>
    void AdamUpdate(AdamParameters parameters, Tensor<float> w, Tensor<float> g, Tensor<float> m, Tensor<float> v);

    /// <summary>
    /// Momentum SGD (Keras form): vel = momentum * vel - lr * g; w += vel (Nesterov off), with
    /// lr = <see cref="StepScalars.LearningRate"/> of the last <see cref="BeginStep"/>.
    /// </summary>
    void SgdMomentumUpdate(float momentum, Tensor<float> w, Tensor<float> g, Tensor<float> velocity);

    // ---- LaPerm ----------------------------------------------------------------------------------

    /// <summary>
    /// Prepares reconnection for a fixed set of tensors: computes and stores every row's
    /// sorted initial values from the tensors' current contents (call it right after
    /// initialisation), plus whatever tables the device needs. Built once per run.
    /// </summary>
    IReconnectPlan PrepareReconnect(IReadOnlyList<ReconnectTarget> targets);

    /// <summary>
    /// Rewrites every row of every target: w[order[i]] = sorted0[i], order = stable argsort
    /// of the row under <see cref="Reconnection.OrderKey(float)"/>. Exact on every backend.
    /// </summary>
    void Reconnect(IReconnectPlan plan);

    // ---- data ------------------------------------------------------------------------------------

    /// <summary>Puts <paramref name="data"/>'s bytes on the device, once per run.</summary>
    IDeviceDataset UploadDataset(Dataset data);

    /// <summary>
    /// Writes one training batch without a host round trip. The batch is positions
    /// [BatchStart, BatchStart + BatchSize) of epoch Epoch's order, all three from the
    /// <see cref="StepScalars"/> of the last <see cref="BeginStep"/> (on a device the kernel reads
    /// them from the step block, so a captured gather replays at every step): for i &lt; BatchSize,
    /// record r = <see cref="EpochShuffler.IndexAt"/>(shuffleSeed, Epoch, count, BatchStart + i);
    /// images[i] = r's image normalised to x / 255, or warped by <paramref name="augmenter"/>'s draw
    /// for (Epoch, r) as <see cref="Augmenter.Augment"/> does; labels[i] = r's label. Bit-identical on
    /// every backend. images holds BatchSize x C x H x W floats, labels BatchSize ints.
    /// </summary>
    void GatherBatch(IDeviceDataset data, ulong shuffleSeed, Augmenter? augmenter, Tensor<float> images, Tensor<int> labels);

    /// <summary>
    /// Writes one evaluation batch without a host round trip: records [start, start + n) of
    /// <paramref name="data"/> in stored order, n = labels.Length; images[i] = record start + i's
    /// image normalised to x / 255 (no shuffle, no augmentation), labels[i] its label. Bit-identical
    /// on every backend and to <see cref="Dataset.FillBatch"/> over those records. The start is a
    /// value, not read from the step block: evaluation is not captured, and the step block keeps
    /// the training step's values. images holds n x C x H x W floats.
    /// </summary>
    void GatherRecords(IDeviceDataset data, int start, Tensor<float> images, Tensor<int> labels);
}

/// <summary>
/// The values of one training step that step-dependent ops read (<see cref="IBackend.BeginStep"/>).
/// The field order and sizes are the C struct StepScalars of cuda/include/laperm/step.cuh
/// (32 bytes: step at 0, epoch 8, batch start 12, batch size 16, learning rate 20, Adam t 24);
/// a test checks that they agree.
/// </summary>
/// <param name="Step">Global training step, counting from 1 (the dropout stream).</param>
/// <param name="Epoch">Epoch, counting from 0.</param>
/// <param name="BatchStart">Index of the batch's first example in the epoch's order.</param>
/// <param name="BatchSize">Examples in the batch.</param>
/// <param name="LearningRate">The learning rate of this step (Adam, SGD).</param>
/// <param name="AdamT">Adam's t for this step: optimizer steps applied so far + 1 (never reset by a sync).</param>
[System.Runtime.InteropServices.StructLayout(System.Runtime.InteropServices.LayoutKind.Sequential)]
public readonly record struct StepScalars(long Step, int Epoch, int BatchStart, int BatchSize, float LearningRate, long AdamT);

/// <summary>Adam's constant hyper-parameters (the per-step learning rate and t come from <see cref="StepScalars"/>).</summary>
public readonly record struct AdamParameters(float Beta1, float Beta2, float Epsilon)
{
    public static AdamParameters Keras => new(0.9f, 0.999f, 1e-7f);

    /// <summary>
    /// lr_t = lr * sqrt(1 - beta2^t) / (1 - beta1^t), in double and rounded once to float; the
    /// powers by <see cref="Power"/>, so every backend (adam.cu included) gets the same bits.
    /// </summary>
    public float LearningRateAt(float learningRate, long t) =>
        (float)(learningRate * Math.Sqrt(1.0 - Power(Beta2, t)) / (1.0 - Power(Beta1, t)));

    /// <summary>
    /// value^exponent by binary exponentiation in double: a fixed sequence of IEEE multiplies that
    /// a kernel repeats exactly (Math.Pow's result may differ in the last bit between libraries).
    /// </summary>
    public static double Power(double value, long exponent)
    {
        double result = 1.0;
        while (exponent > 0)
        {
            if ((exponent & 1) != 0) result *= value;
            value *= value;
            exponent >>= 1;
        }
        return result;
    }
}

/// <summary>A step the skip-step guard left out: its loss (Tensor -1) or the gradient of parameter Tensor was not finite.</summary>
public readonly record struct SkippedStep(long Step, bool Gradient, int Tensor, int BatchSize);

/// <summary>
/// What <see cref="IBackend.TakeNonFinite"/> returns: the first step whose loss was not finite
/// (stop; 0 = none), and the steps left out (skip-step) in order; Lost counts those past the
/// record's capacity (a device keeps <see cref="Capacity"/>), which are known only by number.
/// </summary>
public sealed record NonFiniteReport(long FirstNonFiniteStep, IReadOnlyList<SkippedStep> Skipped, int Lost)
{
    /// <summary>Skipped steps a device records between two takes.</summary>
    public const int Capacity = 256;

    public static NonFiniteReport None { get; } = new(0, [], 0);
}

/// <summary>Ops recorded by <see cref="IBackend.BeginCapture"/>, replayed with one launch.</summary>
public interface ICapturedOps : IDisposable
{
    /// <summary>
    /// False once the backend has replaced a buffer the ops refer to (a scratch buffer grown for
    /// a larger op): capture again, after a warm-up.
    /// </summary>
    bool IsValid { get; }

    /// <summary>Enqueues the captured ops again, with the arguments they had when captured.</summary>
    void Replay();

    /// <summary>
    /// The graph's nodes as the driver counts them: every kernel launch (the backend's and its
    /// libraries'), copy and memset captured. What a replay launches; for reading a profile.
    /// </summary>
    int Nodes { get; }
}

/// <summary>
/// A small tensor's values brought to the host without waiting: <see cref="Start"/> enqueues a
/// copy after every op enqueued before it, with a tag of the caller's (what the values count);
/// <see cref="TryGet"/> hands over the newest copy that has completed. Several copies may be in
/// flight: a host that queues work far ahead of the device still gets values, a few starts old.
/// </summary>
public interface IAsyncReadback<T> : IDisposable where T : unmanaged
{
    int Length { get; }

    /// <summary>Enqueues a copy of <paramref name="source"/>; false (nothing enqueued) when every copy in flight still waits for the device.</summary>
    bool Start(Tensor<T> source, long tag);

    /// <summary>
    /// True, with the values and tag of the newest completed <see cref="Start"/> not handed over
    /// yet (older ones are dropped); false when none has completed since. Never waits.
    /// </summary>
    bool TryGet(Span<T> destination, out long tag);
}

/// <summary>A tensor whose rows LaPerm permutes: Rows x RowLength, contiguous rows.</summary>
public sealed record ReconnectTarget(string Name, Tensor<float> Weights, int Rows, int RowLength)
{
    public void Validate()
    {
        if ((long)Rows * RowLength != Weights.Length)
            throw new ArgumentException($"reconnect target '{Name}': {Rows} rows x {RowLength} != {Weights.Length} elements");
    }
}

/// <summary>A prepared reconnection (sorted initial rows resident on the device).</summary>
public interface IReconnectPlan : IDisposable
{
    IReadOnlyList<ReconnectTarget> Targets { get; }

    /// <summary>Downloads target <paramref name="index"/>'s sorted initial rows (checkpoints, tests).</summary>
    void DownloadSortedInitial(int index, Span<float> destination);
}
