using System.Diagnostics;
using System.Globalization;
using LaPerm.Core.Backend;
using LaPerm.Core.Checkpoints;
using LaPerm.Core.Data;
using LaPerm.Core.IO;
using LaPerm.Core.LaPerm;
using LaPerm.Core.Model;

namespace LaPerm.Core.Training;

/// <summary>
/// One evaluation of the model during a run. <paramref name="BetweenSyncs"/>: of a LaPerm run's free
/// optimizer weights (--eval-every off the sync steps), not of a reconnected network.
/// </summary>
public sealed record EvaluationRecord(long Step, int Epoch, double EpochProgress, float LearningRate, int K, int Syncs, bool BetweenSyncs,
    double TrainLoss, double TrainAccuracy, double? TrainEvalLoss, double? TrainEvalAccuracy,
    double TestLoss, double TestAccuracy, double WallSeconds);

/// <summary>What summary.json holds.</summary>
public sealed record TrainingSummary(string Model, string Data, string Device, string? Preset, ulong Seed, int Threads,
    long Steps, int Epochs, int Syncs, double BestTestAccuracy, long BestStep, double FinalTestAccuracy, double FinalTestLoss,
    double TrainImagesPerSecond, double WallSeconds, long Parameters, int Batch, string K, float LearningRate, string LearningRateSchedule,
    string Optimizer, string LossReduction, string Init, bool Reconnect, bool SkipBias, bool SkipBatchNorm, string Augment, int TrainSize, int TestSize,
    IReadOnlyList<string> ReconnectedTensors)
{
    /// <summary>SHA-256 of DIR/final.safetensors (null without an output directory).</summary>
    public string? FinalWeightsSha256 { get; init; }

    /// <summary>Momentum SGD's momentum; null for Adam, which has none.</summary>
    public float? Momentum { get; init; }

    /// <summary>Whether the steps ran as captured graphs (see <see cref="TrainingOptions.Graphs"/>): requested, possible, and no capture failed.</summary>
    public bool Graphs { get; init; }

    /// <summary>What could not be captured and why (it ran eagerly); empty when nothing failed.</summary>
    public IReadOnlyList<string> GraphFailures { get; init; } = [];

    /// <summary>How many graphs were captured: one per batch size and one for the reconnection, more when one went stale.</summary>
    public int GraphCaptures { get; init; }

    /// <summary>The captured graphs' node counts ("step_batch_128", "reconnection"): what each replay launches.</summary>
    public IReadOnlyDictionary<string, int> GraphNodes { get; init; } = new Dictionary<string, int>();

    /// <summary>When the run first reached <see cref="TrainingOptions.TargetAccuracy"/> (null: no target, or not reached).</summary>
    public TargetReached? Target { get; init; }

    /// <summary>Epochs the steps made (fractional): <see cref="TrainingSummary.Epochs"/> is the configured number, which a run stopped at its target does not reach.</summary>
    public double EpochsTrained { get; init; }

    /// <summary>Steps that --on-nan skip-step skipped (a non-finite loss or gradient): their updates were not applied.</summary>
    public long SkippedSteps { get; init; }

    /// <summary>The backend's own description (<see cref="Backend.IBackend.Description"/>: the card, GEMM math, cuDNN use, reconnection variant, or the CPU's kernels), so runs compare from their summaries alone.</summary>
    public string Backend { get; init; } = "";
}

/// <summary>The first evaluation at or above the target accuracy: its step, training seconds (steps only) and wall seconds.</summary>
public sealed record TargetReached(double Accuracy, double TestAccuracy, long Step, double Epochs, double TrainSeconds, double WallSeconds);

/// <summary>Receives progress; the CLI draws a bar or prints lines.</summary>
public interface ITrainingObserver
{
    void OnStep(long step, long totalSteps, int epoch, double runningLoss, double runningAccuracy);
    void OnEvaluation(EvaluationRecord record);
    void OnSync(long step, int syncs, double seconds);
}

/// <summary>
/// The training loop, written once against <see cref="IBackend"/>: shuffled batches, forward,
/// softmax cross-entropy, backward, inner optimizer step, and every k steps a LaPerm sync.
/// At the end, when reconnecting and the last step was not a sync, one final sync makes the
/// final weights an exact permutation of the initial ones (the model LaPerm defines).
///
/// A step never waits on the host: its scalars go to the backend with
/// <see cref="IBackend.BeginStep"/>, the loss and correct count accumulate on the device, and the
/// non-finite guard is a device flag (<see cref="NonFiniteGuard"/>). The host waits only at its
/// readback points: an evaluation, a checkpoint, a sync (to time it) and the end of an epoch. The
/// progress report (every 10 steps, with an observer) reads back without waiting
/// (<see cref="IAsyncReadback{T}"/>) and shows the latest sums that have arrived. Where the backend can capture
/// (<see cref="IBackend.CanCapture"/>) and <see cref="TrainingOptions.Graphs"/> is on, the
/// steady-state step (forward, loss, guard, backward, optimizer) is captured once per batch size,
/// after one eager warm-up step of that size, and replayed with one launch; a sync step replays it
/// and then a captured reconnection. The batch gather is part of the graph (it reads the epoch
/// and position from the step block); only <see cref="IBackend.BeginStep"/> runs outside.
/// </summary>
public sealed class Trainer
{
    private readonly TrainingOptions _options;
    private readonly ModelDefinition _model;
    private readonly DataSplit _data;
    private readonly IBackend _backend;
    private readonly ITrainingObserver? _observer;

    public Trainer(TrainingOptions options, ModelDefinition model, DataSplit data, IBackend backend, ITrainingObserver? observer = null)
    {
        _options = options;
        _model = model;
        _data = data;
        _backend = backend;
        _observer = observer;
        data.EnsureFits(model.Input.Channels, model.Input.Height, model.Input.Width, model.Classes, model.Name);
        if (options.Epochs <= 0) throw new ArgumentException($"--epochs must be positive, got {options.Epochs}");
        if (options.Batch <= 0) throw new ArgumentException($"--batch must be positive, got {options.Batch}");
        if (options.EvalEvery < 0) throw new ArgumentException($"--eval-every must be 0 or positive, got {options.EvalEvery}");
        if (options.TrainEvalSize < 0) throw new ArgumentException($"--train-eval-size must be 0 or positive, got {options.TrainEvalSize}");
        Initializer.Validate(model, options.Init);
        if (!(options.LearningRate > 0)) throw new ArgumentException($"--lr must be positive, got {options.LearningRate}");
    }

    /// <summary>Where warnings go (a skipped corrupt checkpoint, a resume); null = nowhere.</summary>
    public TextWriter? Warnings { get; set; }

    /// <summary>
    /// A request to stop (the CLI's Ctrl-C): the step in progress finishes, a checkpoint of it is
    /// written when the run has an output directory, and <see cref="Run"/> throws
    /// <see cref="TrainingInterruptedException"/>; <c>--resume</c> continues from there.
    /// </summary>
    public CancellationToken Interrupt { get; init; }

    /// <summary>
    /// True from the run's last step on: that step and the run's end after it (final sync,
    /// evaluation, weights, summary.json) are finished whatever <see cref="Interrupt"/> says.
    /// Read from a signal handler, so that what it says is what happens.
    /// </summary>
    public bool Ending => Volatile.Read(ref _ending);
    private bool _ending;

    /// <summary>Receives the step and phase boundaries (NVTX ranges, profiler capture range); optional.</summary>
    public IStepTracer? Tracer { get; init; }

    /// <summary>
    /// Runs once the weights are initialised, before their sorted initial rows are taken: what it
    /// writes into the network is the run's initial weights. Tests perturb them here (by one ulp,
    /// to see how far a rounding carries); optional.
    /// </summary>
    public Action<Network>? Initialized { get; init; }

    /// <summary>The network after <see cref="Run"/> (final weights), for tests and `eval`.</summary>
    public Network? Network { get; private set; }

    public TrainingSummary Run()
    {
        var wall = Stopwatch.StartNew();
        var o = _options;
        var train = _data.Train;
        var test = _data.Test;
        string? outDir = o.Out;
        using var session = RunSession.Open(o, _model, Warnings, o.StepsPerEpoch(_data.Train.Count)); // [runs] write probe; finds the checkpoint to resume from
        using var metrics = outDir is null ? null : new MetricsWriter(Path.Combine(outDir, "metrics.jsonl"), append: session.Resumed);

        var network = new Network(_model, _backend);
        Network = network;
        Initializer.Apply(network, o.Init, o.Seed);
        Initialized?.Invoke(network);
        session.OnInitialized(network); // [runs] on resume: the stored sorted initial rows become the plan's
        using var reconnector = o.Reconnect ? new Reconnector(network, o.ReconnectOptions) : null;
        using var optimizer = new Optimizer(network, o.Optimizer, o.Momentum, o.LossReduction);
        using var lossAndCorrect = _backend.Allocate<float>(new Shape(2));
        using var evaluationSums = _backend.Allocate<float>(new Shape(2));   // one for the run: a free would make captured steps stale
        // The progress line's running loss and accuracy come back without a wait, never stalling
        // the queued steps.
        using var progress = _observer is null ? null : _backend.CreateReadback<float>(2);
        var progressSums = new float[2];
        (double Loss, double Accuracy) progressShown = (double.NaN, double.NaN);
        var augmenter = o.Augment == "none" ? null : new Augmenter(AugmentationPreset.Parse(o.Augment), o.Seed);
        using var deviceTrain = _backend.UploadDataset(train); // once per run; every batch is gathered on the backend
        using var deviceTest = _backend.UploadDataset(test); // once per run; evaluation gathers its batches there too
        var resumed = session.Restore(optimizer, reconnector, lossAndCorrect, metrics); // [runs]
        string dataSha256 = Dataset.Fingerprint(train, test);
        if (resumed?.DataSha256 is { } before && before != dataSha256)
            Warnings?.WriteLine($"laperm: warning: the data ({o.Data}) is not what this run trained and tested on before it stopped (its images or labels differ); the resumed run will not end as the run straight would have.");
        var guard = session.Guard!;
        guard.Reset();
        bool useGraphs = o.Graphs && _backend.CanCapture;
        const int ReconnectKey = 0; // steps are keyed by their batch size (>= 1)
        static string DescribeGraphKey(int key) => key == ReconnectKey ? "the reconnection" : $"the training step of batch {key}";
        using var graphs = new StepGraphs(_backend, useGraphs, Tracer, Warnings, DescribeGraphKey);
        var mode = new ForwardMode(true, o.Seed);

        int stepsPerEpoch = o.StepsPerEpoch(train.Count);
        long totalSteps = o.LastStep(train.Count);
        long step = 0;
        double trainSeconds = 0;
        long trainImages = 0;
        double bestAccuracy = -1;
        long bestStep = 0;
        EvaluationRecord? last = null;
        long lastSyncStep = -1;
        // The run's last step when it is not a multiple of k: synced so that final.safetensors is a
        // LaPerm network, but outside the method's schedule, so its evaluation is not a candidate
        // for the best or the target (the authors' loop: syncs at multiples of k only).
        long endOfRunSyncStep = -1;
        long imagesSinceEval = 0;
        double wallOffset = 0;
        long lastEvalStep = 0;
        // Default evaluation: right after a sync (synchronised weights), at most about four times an epoch.
        long minimumEvalGap = Math.Max(1, stepsPerEpoch / 4);
        var syncWatch = new Stopwatch();
        TargetReached? target = null;
        bool stopAtTarget = false;

        void Evaluate(int epoch, double epochProgress, float lr)
        {
            using var phase = new TracerPhase(Tracer, TrainingPhase.Evaluate);
            EvaluateCore(epoch, epochProgress, lr);
        }

        void EvaluateCore(int epoch, double epochProgress, float lr)
        {
            Readback();
            var sums = new float[2];
            _backend.Download(lossAndCorrect, sums);
            _backend.Fill(lossAndCorrect, 0f);
            double trainLoss = imagesSinceEval > 0 ? (double)sums[0] / imagesSinceEval : double.NaN;
            double trainAccuracy = imagesSinceEval > 0 ? (double)sums[1] / imagesSinceEval : double.NaN;
            imagesSinceEval = 0;
            lastEvalStep = step;
            (double Loss, double Accuracy)? trainEval = o.TrainEvalSize > 0
                ? Evaluation.Run(network, deviceTrain, o.Batch, Math.Min(o.TrainEvalSize, train.Count), evaluationSums) : null;
            var (testLoss, testAccuracy) = Evaluation.Run(network, deviceTest, o.Batch, test.Count, evaluationSums);
            // Weights of a reconnection, bit for bit permutations of the initial ones; never so with --no-reconnect.
            bool synchronized = reconnector is not null && lastSyncStep == step;
            bool betweenSyncs = reconnector is not null && !synchronized;
            // The end-of-run sync's network counts only when no evaluation before it did (a run shorter than k).
            bool candidate = !betweenSyncs && (endOfRunSyncStep != step || bestAccuracy < 0);
            var record = new EvaluationRecord(step, epoch, epochProgress, lr, o.K.KAt(epoch), reconnector?.Syncs ?? 0, betweenSyncs,
                trainLoss, trainAccuracy, trainEval?.Loss, trainEval?.Accuracy, testLoss, testAccuracy, wallOffset + wall.Elapsed.TotalSeconds);
            last = record;
            metrics?.Write(new Dictionary<string, object?>
            {
                ["event"] = "eval", ["step"] = step, ["epoch"] = Math.Round(epoch + epochProgress, 4), ["lr"] = lr, ["k"] = record.K,
                ["syncs"] = record.Syncs, ["synchronized"] = synchronized, ["candidate"] = candidate,
                ["train_loss"] = Finite(trainLoss), ["train_accuracy"] = Finite(trainAccuracy),
                ["train_eval_loss"] = trainEval?.Loss, ["train_eval_accuracy"] = trainEval?.Accuracy,
                ["test_loss"] = Finite(testLoss), ["test_accuracy"] = testAccuracy, ["wall_seconds"] = Math.Round(record.WallSeconds, 3),
            });
            if (o.TargetAccuracy is { } goal && target is null && candidate && testAccuracy >= goal)
            {
                target = new TargetReached(goal, testAccuracy, step, Math.Round(epoch + epochProgress, 4), trainSeconds, record.WallSeconds);
                metrics?.Write(new Dictionary<string, object?>
                {
                    ["event"] = "target", ["target_accuracy"] = goal, ["test_accuracy"] = testAccuracy, ["step"] = step,
                    ["epoch"] = target.Epochs, ["train_seconds"] = Math.Round(trainSeconds, 3), ["wall_seconds"] = Math.Round(record.WallSeconds, 3),
                });
                stopAtTarget = o.StopAtTarget;
            }
            // The best is a LaPerm network: with reconnection, only synchronised weights count (an
            // evaluation between syncs, --eval-every, is of free optimizer weights, as in the paper), and
            // only those of the method's schedule (not the end-of-run sync).
            if (candidate && testAccuracy > bestAccuracy)
            {
                bestAccuracy = testAccuracy;
                bestStep = step;
                if (outDir is not null) Checkpoint.Save(network, Path.Combine(outDir, RunSession.BestWeightsFile), Metadata(step));
            }
            _observer?.OnEvaluation(record);
        }

        void Sync(int epoch)
        {
            Readback(); // before the rows are rewritten, so a stop names the non-finite weights
            syncWatch.Restart();
            using (new TracerPhase(Tracer, TrainingPhase.Reconnect))
            {
                graphs.Run(ReconnectKey, () =>
                {
                    reconnector!.EnqueueSync();
                    return true;
                });
                reconnector!.CountSync();
            }
            if (o.VerifyInvariants) reconnector.VerifyInvariants();
            _backend.Synchronize();
            syncWatch.Stop();
            lastSyncStep = step;
            var traffic = session.MeasureTraffic(); // [runs] reconnection traffic
            metrics?.Write(new Dictionary<string, object?>
            {
                ["event"] = "sync", ["step"] = step, ["epoch"] = epoch, ["syncs"] = reconnector.Syncs,
                ["seconds"] = Math.Round(syncWatch.Elapsed.TotalSeconds, 6), ["verified"] = o.VerifyInvariants,
                ["changed_since_previous_sync"] = traffic?.SincePreviousSync, ["changed_since_init"] = traffic?.SinceInit,
            });
            _observer?.OnSync(step, reconnector.Syncs, syncWatch.Elapsed.TotalSeconds);
        }

        // The ops of one step after its BeginStep: run eagerly, or recorded into a graph.
        // Nothing in them waits on the host: the NaN/Inf guard only records (see NonFiniteGuard).
        bool StepOps(Network.Pass pass, int size)
        {
            guard.BeforeStep(); // [runs] skip-step: device copies of the running loss and batch-norm statistics
            using (new TracerPhase(Tracer, TrainingPhase.Data))
            {
                // The gather reads the epoch and batch position from the step block BeginStep set, so
                // a captured gather fetches each replayed step's batch.
                _backend.GatherBatch(deviceTrain, o.Seed, augmenter, pass.Input, pass.Labels);
            }
            using (new TracerPhase(Tracer, TrainingPhase.Forward))
            {
                pass.Forward(mode);
                pass.Loss(lossAndCorrect);
            }
            guard.AfterLoss();
            using (new TracerPhase(Tracer, TrainingPhase.Backward)) pass.Backward();
            guard.AfterBackward();
            using (new TracerPhase(Tracer, TrainingPhase.Optimizer)) optimizer.EnqueueUpdate(size);
            return true;
        }

        // A readback point: waits for the queued steps, stops on a non-finite loss (stop policy),
        // or takes the steps skip-step left out back out of the counts (their lines go to metrics.jsonl).
        void Readback()
        {
            var (skippedSteps, skippedImages) = guard.Check(o.Batch);
            imagesSinceEval -= skippedImages;
            optimizer.UncountSteps(skippedSteps);
        }

        int epochIndex = 0;
        float learningRate = o.LearningRate;
        int firstBatch = 0;
        if (resumed is not null) // [runs] continue from the checkpoint's position and counters
        {
            (step, epochIndex, firstBatch, learningRate) = (resumed.Step, resumed.Epoch, resumed.BatchInEpoch, resumed.LearningRate);
            (trainSeconds, trainImages, bestAccuracy, bestStep) = (resumed.TrainSeconds, resumed.TrainImages, resumed.BestTestAccuracy, resumed.BestStep);
            (lastSyncStep, lastEvalStep, imagesSinceEval, wallOffset) = (resumed.LastSyncStep, resumed.LastEvalStep, resumed.ImagesSinceEval, resumed.WallSeconds);
            target = resumed.Target;
            // Stopped (--stop-after, a signal) right after the evaluation that reached the target: no further step.
            stopAtTarget = o.StopAtTarget && target is not null;
        }
        RunState State(int nextEpoch, int nextBatch) => new()
        {
            Step = step, Epoch = nextEpoch, BatchInEpoch = nextBatch, StepsPerEpoch = stepsPerEpoch,
            LearningRateBits = BitConverter.SingleToUInt32Bits(learningRate), K = o.K.KAt(Math.Min(epochIndex, o.Epochs - 1)),
            LastSyncStep = lastSyncStep, LastEvalStep = lastEvalStep, BestTestAccuracy = bestAccuracy, BestStep = bestStep, ImagesSinceEval = imagesSinceEval,
            TrainSeconds = trainSeconds, TrainImages = trainImages, WallSeconds = wallOffset + wall.Elapsed.TotalSeconds,
            Target = target, DataSha256 = dataSha256,
        };
        for (; epochIndex < o.Epochs && !stopAtTarget; epochIndex++)
        {
            learningRate = o.LearningRateSchedule.At(o.LearningRate, epochIndex);
            for (int b = firstBatch; b < stepsPerEpoch; b++)
            {
                var stepWatch = Stopwatch.StartNew();
                int start = b * o.Batch, size = Math.Min(o.Batch, train.Count - start);
                var pass = network.GetPass(size);
                Tracer?.BeginStep(step + 1);
                step++;
                // No interrupt stops the last step: the end follows it (unless --stop-after names it: the run stops there).
                if (step == totalSteps && o.Checkpoints.StopAfterStep != totalSteps) Volatile.Write(ref _ending, true);
                _backend.BeginStep(optimizer.NextStep(step, epochIndex, start, size, learningRate));
                // Eager, or a replay of this batch size's captured step. A step the guard leaves out
                // is counted here and taken back out at the next readback point.
                graphs.Run(size, () => StepOps(pass, size));
                optimizer.CountStep();
                imagesSinceEval += size;
                bool synced = false;
                if (reconnector is not null && o.K.IsSyncStep(step, epochIndex))
                {
                    Sync(epochIndex);
                    synced = true;
                }
                Tracer?.EndStep(step);
                bool report = _observer is not null && (step % 10 == 0 || step == totalSteps);
                bool evaluate = o.EvalEvery > 0 ? step % o.EvalEvery == 0 : synced && step - lastEvalStep >= minimumEvalGap;
                evaluate &= step != totalSteps;
                // Interrupted: this step's checkpoint (at an epoch's last step, the epoch-end one below).
                bool interrupted = Interrupt.IsCancellationRequested;
                bool checkpoint = (session.IsDue(step) || interrupted) && b + 1 < stepsPerEpoch;
                // A readback point ends a stretch of steps queued without waiting: wait for them here,
                // inside the step's time, so train_images_per_second counts the device's work.
                // (A progress report is not one: it reads back asynchronously.)
                if (evaluate || checkpoint || b + 1 == stepsPerEpoch) Readback();
                trainSeconds += stepWatch.Elapsed.TotalSeconds;
                trainImages += size;
                double epochProgress = (b + 1.0) / stepsPerEpoch;
                if (report && step == totalSteps)
                {
                    // The last line is exact: the run has just waited at the epoch's end anyway.
                    _backend.Download(lossAndCorrect, progressSums);
                    _observer!.OnStep(step, totalSteps, epochIndex, progressSums[0] / imagesSinceEval, progressSums[1] / imagesSinceEval);
                }
                else if (report)
                {
                    // The line shows the newest sums that have arrived: this step's where the backend
                    // is done at once (cpu, emu), else those of an earlier report (cuda, still busy).
                    // Each copy carries the image count its sums are of (the tag).
                    if (progress!.TryGet(progressSums, out long images) && images > 0) progressShown = (progressSums[0] / images, progressSums[1] / images);
                    progress.Start(lossAndCorrect, imagesSinceEval);
                    if (progress.TryGet(progressSums, out images) && images > 0) progressShown = (progressSums[0] / images, progressSums[1] / images);
                    _observer!.OnStep(step, totalSteps, epochIndex, progressShown.Loss, progressShown.Accuracy);
                }
                if (evaluate) Evaluate(epochIndex, epochProgress, learningRate);
                if (checkpoint) session.Write(State(epochIndex, b + 1)); // [runs]
                if (interrupted && b + 1 < stepsPerEpoch) throw session.Interrupted(step);
                if (stopAtTarget) break;
            }
            if (stopAtTarget) break;
            if (o.EvalEvery == 0 && reconnector is null && epochIndex < o.Epochs - 1) Evaluate(epochIndex, 1.0, learningRate);
            if (stopAtTarget) break;   // reached at this epoch-end evaluation: no further step
            firstBatch = 0;
            Readback();
            session.Write(State(epochIndex + 1, 0)); // [runs] a checkpoint at every epoch end
            if (Interrupt.IsCancellationRequested && epochIndex + 1 < o.Epochs) throw session.Interrupted(step);
        }
        Volatile.Write(ref _ending, true);
        // Stopped at the target: the run ends in the epoch it reached it, right after that
        // (synchronised) evaluation, which is the final one.
        // (A run resumed from an epoch-end checkpoint stands at the next epoch's start: the epoch it reached the target is the one before.)
        int lastEpoch = stopAtTarget ? Math.Min(epochIndex, o.Epochs - 1) : o.Epochs - 1;
        Readback();
        if (reconnector is not null && lastSyncStep != step)
        {
            Sync(lastEpoch);
            endOfRunSyncStep = step;
        }
        if (!(stopAtTarget && lastEvalStep == step)) Evaluate(lastEpoch, 1.0, learningRate);
        // The final numbers are the last evaluation's. A run resumed right after the one that reached its
        // target evaluates nothing more: the same weights measured again give that evaluation's numbers,
        // not written a second time.
        var (finalLoss, finalAccuracy) = last is { } final ? (final.TestLoss, final.TestAccuracy)
            : Evaluation.Run(network, deviceTest, o.Batch, test.Count, evaluationSums);
        if (outDir is not null) Checkpoint.Save(network, Path.Combine(outDir, RunSession.FinalWeightsFile), Metadata(step));
        string? finalSha = outDir is null ? null : RunSession.Sha256(Path.Combine(outDir, RunSession.FinalWeightsFile)); // [runs]

        var summary = new TrainingSummary(_model.Name, o.Data, _backend.Name, o.Preset, o.Seed, o.Threads, step, o.Epochs,
            reconnector?.Syncs ?? 0, bestAccuracy, bestStep, finalAccuracy, finalLoss,
            trainSeconds > 0 ? trainImages / trainSeconds : 0, wallOffset + wall.Elapsed.TotalSeconds, _model.ParameterCount, o.Batch,
            o.K.ToString(), o.LearningRate, o.LearningRateSchedule.ToString(), o.Optimizer.ToString().ToLowerInvariant(),
            o.LossReduction.ToString().ToLowerInvariant(), o.Init.Describe(), o.Reconnect, o.SkipBias, o.SkipBatchNorm, o.Augment, train.Count, test.Count,
            reconnector?.Targets.Select(t => t.Name).ToList() ?? []) {
                FinalWeightsSha256 = finalSha, Momentum = o.Optimizer == OptimizerKind.Sgd ? o.Momentum : null, Graphs = useGraphs && graphs.Failures.Count == 0, Target = target, GraphCaptures = graphs.Captures,
                Backend = _backend.Description, SkippedSteps = guard.SkippedSteps, EpochsTrained = Math.Round((double)step / stepsPerEpoch, 4),
                GraphFailures = [.. graphs.Failures.Select(f => $"{DescribeGraphKey(f.Key)}: {f.Value}")],
                GraphNodes = graphs.NodeCounts.ToDictionary(c => c.Key == ReconnectKey ? "reconnection" : $"step_batch_{c.Key}", c => c.Nodes),
            };
        if (outDir is not null) AtomicFile.WriteAllText(Path.Combine(outDir, RunSession.SummaryFile), SummaryJson(summary));
        return summary;

        Dictionary<string, string> Metadata(long atStep) => Checkpoint.Metadata(_model, o, atStep);
    }

    private static double? Finite(double value) => double.IsFinite(value) ? value : null;

    public static string SummaryJson(TrainingSummary s) => System.Text.Json.JsonSerializer.Serialize(new Dictionary<string, object?>
    {
        ["laperm_version"] = BuildInfo.Version, ["model"] = s.Model, ["data"] = s.Data, ["device"] = s.Device, ["backend"] = s.Backend, ["preset"] = s.Preset, ["seed"] = s.Seed, ["threads"] = s.Threads,
        ["steps"] = s.Steps, ["epochs"] = s.Epochs, ["epochs_trained"] = s.EpochsTrained, ["syncs"] = s.Syncs,
        ["best_test_accuracy"] = s.BestTestAccuracy, ["best_step"] = s.BestStep,
        ["final_test_accuracy"] = s.FinalTestAccuracy, ["final_test_loss"] = Finite(s.FinalTestLoss),
        ["train_images_per_second"] = Math.Round(s.TrainImagesPerSecond, 1), ["wall_seconds"] = Math.Round(s.WallSeconds, 3),
        ["parameters"] = s.Parameters, ["batch"] = s.Batch, ["k"] = s.K, ["lr"] = s.LearningRate, ["lr_schedule"] = s.LearningRateSchedule,
        ["optimizer"] = s.Optimizer, ["momentum"] = s.Momentum, ["loss_reduction"] = s.LossReduction, ["init"] = s.Init, ["reconnect"] = s.Reconnect, ["skip_bias"] = s.SkipBias, ["skip_bn"] = s.SkipBatchNorm,
        ["augment"] = s.Augment, ["train_size"] = s.TrainSize, ["test_size"] = s.TestSize, ["reconnected_tensors"] = s.ReconnectedTensors,
        ["final_weights_sha256"] = s.FinalWeightsSha256, ["graphs"] = s.Graphs,
        ["graph_captures"] = s.GraphCaptures,
        ["graph_nodes"] = s.GraphNodes.Count == 0 ? null : s.GraphNodes,
        ["graph_failures"] = s.GraphFailures.Count == 0 ? null : s.GraphFailures,
        ["skipped_steps"] = s.SkippedSteps,
        ["target_accuracy"] = s.Target?.Accuracy, ["steps_to_target"] = s.Target?.Step, ["epochs_to_target"] = s.Target?.Epochs,
        ["train_seconds_to_target"] = s.Target is null ? null : Math.Round(s.Target.TrainSeconds, 3),
        ["wall_seconds_to_target"] = s.Target is null ? null : Math.Round(s.Target.WallSeconds, 3),
    }, Json.Indented);
}
