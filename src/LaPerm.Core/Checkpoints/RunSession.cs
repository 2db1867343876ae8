using System.Globalization;
using System.Text.Json.Nodes;
using LaPerm.Core.Backend;
using LaPerm.Core.IO;
using LaPerm.Core.LaPerm;
using LaPerm.Core.Model;
using LaPerm.Core.Training;

namespace LaPerm.Core.Checkpoints;

/// <summary>
/// Everything a training run does to survive: the write probe before training, checkpoints
/// (<see cref="CheckpointStore"/>), resuming from the latest valid one, reconnection traffic and
/// the non-finite guard. The trainer calls it at a few fixed points of its loop:
/// <see cref="Open"/> before anything, <see cref="OnInitialized"/> right after initialisation,
/// <see cref="Restore"/> once optimizer and reconnector exist, <see cref="IsDue"/>/<see cref="Write"/>
/// after steps and at epoch ends, <see cref="MeasureTraffic"/> at syncs.
/// A session without an output directory writes nothing and restores nothing.
/// </summary>
public sealed class RunSession : IDisposable
{
    public const string WeightsFile = "weights.safetensors";
    public const string SortedInitialFile = "sorted_initial.safetensors";
    public const string OptimizerFile = "optimizer.safetensors";
    public const string TrafficFile = "traffic.safetensors";
    public const string StateFile = "state.json";
    public const string ConfigFile = "config.json";
    public const string RunConfigFile = "run-config.json";
    public const string MetricsFileName = "metrics.jsonl";
    public const string InitialWeightsFile = "initial.safetensors";
    public const string BestWeightsFile = "best.safetensors";
    public const string FinalWeightsFile = "final.safetensors";
    public const string SummaryFile = "summary.json";

    private readonly TrainingOptions _options;
    private readonly ModelDefinition _model;
    private readonly TextWriter? _log;
    private readonly CheckpointStore? _store;
    private readonly string _configJson;
    private Loaded? _resume;
    private Network? _network;
    private Optimizer? _optimizer;
    private Reconnector? _reconnector;
    private Tensor<float>? _lossAndCorrect;
    private MetricsWriter? _metrics;
    private string? _lastCheckpoint;
    private FileStream? _lock;

    private sealed record Loaded(string Path, RunState State, Dictionary<string, NamedArray> Weights, Dictionary<string, NamedArray> SortedInitial,
        Dictionary<string, NamedArray> Optimizer, IReadOnlyDictionary<string, string> OptimizerMetadata, Dictionary<string, NamedArray>? Traffic);

    private int _stepsPerEpoch;

    private RunSession(TrainingOptions options, ModelDefinition model, TextWriter? log)
    {
        _options = options;
        _model = model;
        _log = log;
        _configJson = RunConfiguration.ToJson(options, model.Spec);
        if (options.Out is not null) _store = new CheckpointStore(options.Out);
    }

    public CheckpointOptions Options => _options.Checkpoints;

    /// <summary>True when a checkpoint was loaded: metrics.jsonl is appended to, not started over.</summary>
    public bool Resumed => _resume is not null;

    public string MetricsPath => Path.Combine(_options.Out ?? ".", MetricsFileName);

    public ReconnectionTraffic? Traffic { get; private set; }
    public NonFiniteGuard? Guard { get; private set; }

    /// <summary>
    /// Probes that the output directory can be written (throws <see cref="RunStorageException"/>
    /// before any training otherwise), and with <see cref="CheckpointOptions.Resume"/> finds and
    /// reads the newest valid checkpoint, skipping broken ones with a warning on <paramref name="log"/>.
    /// </summary>
    /// <param name="stepsPerEpoch">The run's steps per epoch on the data it has now (0: not checked); a checkpoint of other epochs cannot be resumed.</param>
    public static RunSession Open(TrainingOptions options, ModelDefinition model, TextWriter? log, int stepsPerEpoch = 0)
    {
        var session = new RunSession(options, model, log) { _stepsPerEpoch = stepsPerEpoch };
        if (options.Out is null) return session;
        try
        {
            session.OpenDirectory();
            return session;
        }
        catch
        {
            session.Dispose();
            throw;
        }
    }

    /// <summary>The run directory is this session's until <see cref="Dispose"/>: a second laperm on it stops at once.</summary>
    public void Dispose()
    {
        _lock?.Dispose();
        _lock = null;
    }

    public const string LockFile = ".lock";

    /// <summary>
    /// Whether opening a file with FileShare.None failed because another process holds it: on Unix
    /// .NET takes an advisory lock and reports the errno (EWOULDBLOCK: 11 on Linux, 35 on the BSDs
    /// and macOS), on Windows ERROR_SHARING_VIOLATION (32) in the HRESULT's low word.
    /// </summary>
    private static bool HeldByAnotherProcess(IOException e) =>
        OperatingSystem.IsWindows() ? (e.HResult & 0xFFFF) == 32 : e.HResult == (OperatingSystem.IsMacOS() || OperatingSystem.IsFreeBSD() ? 35 : 11);

    private void OpenDirectory()
    {
        Lock();
        ProbeWritable();
        AtomicFile.RemoveLeftovers(_options.Out!);
        var store = _store!;
        if (_options.Checkpoints.Resume)
        {
            // Set-aside checkpoints count: a second resume after the first rejected them all is not a run stopped before its first.
            bool anyWritten = store.AnyWritten();
            _resume = FindLatestValid();
            if (_resume is null)
                StartOver(store, anyWritten);
            else
            {
                if (_options.Checkpoints.StopAfterStep is { } stop && stop <= _resume.State.Step)
                    throw new ResumeException($"--stop-after {stop} is not after the checkpoint resumed from ('{_resume.Path}', step {_resume.State.Step}); give a later step");
                // Other data with another number of training images: the checkpoint's position (epoch,
                // batch) means nothing in its epochs, and every checkpoint after it would contradict itself.
                if (_stepsPerEpoch > 0 && _resume.State.StepsPerEpoch != _stepsPerEpoch)
                    throw new ResumeException($"the checkpoint '{_resume.Path}' has epochs of {_resume.State.StepsPerEpoch} steps, but --batch {_options.Batch} over the training images of {_options.Data} gives {_stepsPerEpoch}: the data is not what the run trained on; resume it on that data");
                // A run killed between replacing `latest` and pruning holds one checkpoint too many; nothing later would prune it.
                store.KeepNewest(Options.Keep);
                _lastCheckpoint = _resume.Path;
                // After the last step only the run's end (final sync, evaluation, weights, summary.json) is left: it had been
                // done when summary.json is there (it is run again), or the run stopped (--stop-after, a kill) before it.
                string left = File.Exists(Path.Combine(_options.Out!, SummaryFile)) ? "; the run had ended: its end is run again"
                    : _resume.State.Epoch >= _options.Epochs ? ", the last: only the run's end is left" : "";
                _log?.WriteLine($"laperm: resuming from '{_resume.Path}' (step {_resume.State.Step}{left}).");
            }
        }
        else
        {
            RemoveEarlierRun(store);
        }
        store.RemoveLeftovers();
        var recorded = _options.Checkpoints.Recorded ?? _options;
        RunConfiguration.Write(Path.Combine(_options.Out!, RunConfigFile), recorded with { Checkpoints = recorded.Checkpoints with { Resume = false, Recorded = null } }, _model.Spec);
        // Last: a resume that fails before this point (run-config.json cannot be written) leaves the metrics whole.
        if (_resume is not null)
        {
            // The summary of an ended run describes metrics about to be cut back: gone first, so
            // that a kill before the end is run again leaves an unfinished run, not one whose
            // summary.json claims evaluations metrics.jsonl no longer holds.
            File.Delete(Path.Combine(_options.Out!, SummaryFile));
            TrimMetrics(MetricsPath, _resume.State.MetricsBytes, _log);
        }
    }

    /// <summary>
    /// --resume found no checkpoint to continue from. Before its first checkpoint a run has
    /// written nothing that starting over (deterministically, from its recorded configuration)
    /// does not write again: its best weights, its metrics. Damaged checkpoints (set aside as
    /// rejected-*), or the results of a run that ended, are another matter: starting over would
    /// replace what the user asked to continue, so that is refused and nothing is changed.
    /// </summary>
    private void StartOver(CheckpointStore store, bool anyWritten)
    {
        var results = EarlierRunFiles(_options.Out!);
        bool ended = results.Any(path => Path.GetFileName(path) is SummaryFile or FinalWeightsFile);
        string names = string.Join(", ", results.Select(Path.GetFileName));
        if (anyWritten && results.Count > 0)
            throw new ResumeException(
                $"no valid checkpoint in '{store.Directory}' to resume from, and '{_options.Out}' holds {names} of that run, "
                + "which starting over would delete; the damaged checkpoints are set aside as rejected-*, nothing else was changed: train with a new --out to start over and keep them");
        if (ended)
            throw new ResumeException(
                $"no checkpoint in '{store.Directory}' to resume from, and '{_options.Out}' holds {names} of that run, which ended; "
                + "starting over would delete them, so nothing was changed: train with a new --out to run it again");
        _log?.WriteLine(anyWritten
            ? $"laperm: warning: no valid checkpoint in '{store.Directory}'; starting the run over from step 0."
            : $"laperm: no checkpoint in '{store.Directory}' yet (the run stopped before its first); starting the run over from step 0 with its recorded configuration"
              + (results.Count > 0 ? $", which writes {names} again." : "."));
        try
        {
            File.Delete(MetricsPath);
            foreach (var path in results) File.Delete(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new RunStorageException($"the run's earlier files in '{_options.Out}' cannot be removed ({e.Message.TrimEnd('.')}); choose another --out", e);
        }
    }

    /// <summary>
    /// Throws <see cref="RunStorageException"/> when another laperm run holds <paramref name="dir"/>'s
    /// lock, as opening a session there would. The CLI calls it before judging what the directory
    /// holds: checkpoints that a live run is writing are not an unfinished run to resume.
    /// </summary>
    public static void RefuseDirectoryInUse(string dir)
    {
        string path = Path.Combine(dir, LockFile);
        if (!File.Exists(path)) return;
        try
        {
            using var probe = new FileStream(path, FileMode.Open, FileAccess.ReadWrite, FileShare.None);
        }
        catch (IOException e) when (HeldByAnotherProcess(e))
        {
            throw new RunStorageException(InUse(dir, path), e);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // Not a lock held by a run: opening the session says what is wrong with the directory.
        }
    }

    private static string InUse(string dir, string lockPath) =>
        $"output directory '{dir}' is in use by another laperm run (it holds '{lockPath}' open); wait for that run to end or choose another --out";

    /// <summary>
    /// Holds DIR/.lock open exclusively (an advisory lock on Linux and macOS, a sharing lock on
    /// Windows) for the session's life. Two runs in one directory would reject or delete each
    /// other's checkpoints; the second one now stops before touching anything. Also proves that
    /// the directory itself (not only checkpoints/) can be written.
    /// </summary>
    private void Lock()
    {
        string path = Path.Combine(_options.Out!, LockFile);
        RefuseFileAsDirectory(_options.Out!);
        try
        {
            Directory.CreateDirectory(_options.Out!);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new RunStorageException($"output directory '{_options.Out}' cannot be written ({e.Message}); choose another --out", e);
        }
        try
        {
            _lock = new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
        }
        catch (UnauthorizedAccessException e)
        {
            throw new RunStorageException($"output directory '{_options.Out}' cannot be written ({e.Message}); choose another --out", e);
        }
        catch (IOException e)
        {
            // A sharing violation is the lock held by another process; anything else (a read-only or full disk) is said as it is.
            throw new RunStorageException(HeldByAnotherProcess(e)
                ? InUse(_options.Out!, path)
                : $"output directory '{_options.Out}' cannot be written ({e.Message.TrimEnd('.')}); choose another --out", e);
        }
    }

    /// <summary>
    /// Throws <see cref="RunStorageException"/> when <paramref name="dir"/>, or a folder it would be
    /// made in, is a file (the system's own error names neither). The CLI calls it before the run's header.
    /// </summary>
    public static void RefuseFileAsDirectory(string dir)
    {
        string whole = Path.TrimEndingDirectorySeparator(dir);
        for (string? path = whole; !string.IsNullOrEmpty(path); path = Path.GetDirectoryName(path))
        {
            if (Directory.Exists(path)) return;
            if (File.Exists(path)) // also true for a link to nothing
            {
                string what = DanglingLink(path) ?? "a file, not a directory";
                throw new RunStorageException(path == whole
                    ? $"output directory '{dir}' is {what}; choose another --out"
                    : $"output directory '{dir}' cannot be made: '{path}' is {what}; choose another --out");
            }
        }
    }

    /// <summary>What a symbolic link at <paramref name="path"/> leads to when it ends nowhere (a missing target or a loop of links); null for anything else.</summary>
    private static string? DanglingLink(string path)
    {
        var link = new FileInfo(path);
        if (link.LinkTarget is not { } target) return null;
        try
        {
            return link.ResolveLinkTarget(returnFinalTarget: true) is { } final && Path.Exists(final.FullName) ? null : $"a link to '{target}', which does not exist";
        }
        catch (IOException)
        {
            return $"a link to '{target}' in a loop of links";
        }
    }

    /// <summary>
    /// A new run in a directory that holds an unfinished run (checkpoints, no summary.json: it was
    /// interrupted, stopped or failed) is refused: repeating the command instead of adding --resume
    /// would delete what it was meant to continue.
    /// A new run in a used directory starts from an empty slate: the earlier run's checkpoints would
    /// otherwise outrank (and outlive) this run's, and its summary and best/final weights would sit
    /// beside this run's metrics as if they were its results until (or, if this run fails, after) it
    /// overwrote them. Its metrics.jsonl is started over by the trainer. A --resume that found no
    /// valid checkpoint keeps the broken ones (for inspection) and removes the results.
    /// </summary>
    private void RemoveEarlierRun(CheckpointStore store)
    {
        string dir = _options.Out!;
        try
        {
            if (!_options.Checkpoints.Resume && !_options.Checkpoints.Overwrite) RefuseEarlierRun(dir);
            if (store.Checkpoints() is { Count: > 0 } stale && !_options.Checkpoints.Resume)
            {
                _log?.WriteLine($"laperm: warning: '{dir}' holds {stale.Count} checkpoint{(stale.Count == 1 ? "" : "s")} of an earlier run; removing {(stale.Count == 1 ? "it" : "them")} (use --resume DIR to continue that run instead).");
                foreach (var (_, path) in stale) Directory.Delete(path, recursive: true);
                File.Delete(store.LatestPointer);
            }
            var results = EarlierRunFiles(dir);
            if (results.Count == 0) return;
            _log?.WriteLine($"laperm: warning: '{dir}' holds {string.Join(", ", results.Select(Path.GetFileName))} of an earlier run; removing them, and {MetricsFileName} and {RunConfigFile} start over (use a new --out to keep them).");
            foreach (var path in results) File.Delete(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new RunStorageException($"the earlier run in '{dir}' cannot be removed ({e.Message.TrimEnd('.')}); choose another --out", e);
        }
    }

    /// <summary>
    /// Throws <see cref="ResumeException"/> when <paramref name="dir"/> holds a run that a new run
    /// there would delete: an unfinished one (checkpoints, no summary.json; named with the
    /// --resume that continues it), or the results of one (summary.json, best/final weights, the
    /// figures drawn from them). Unless <see cref="CheckpointOptions.Overwrite"/>: the CLI calls
    /// it before the run's header; opening a session calls it again (a run may have appeared meanwhile).
    /// </summary>
    public static void RefuseEarlierRun(string dir)
    {
        string quoted = Shell.Quote(dir);
        if (!File.Exists(Path.Combine(dir, SummaryFile)) && new CheckpointStore(dir).Checkpoints() is { Count: > 0 } checkpoints)
            throw new ResumeException($"'{dir}' holds an unfinished run ({checkpoints.Count} checkpoint{(checkpoints.Count == 1 ? "" : "s")}, the newest of step {checkpoints.Max(c => c.Step)}, no {SummaryFile}); " +
                                      $"continue it with: laperm train --resume {quoted}; or choose another --out, or give --overwrite to start over in it");
        if (EarlierRunFiles(dir) is { Count: > 0 } results)
        {
            // Best weights of a run stopped before its first checkpoint: --resume runs it again (see StartOver).
            bool stoppedEarly = !results.Any(path => Path.GetFileName(path) is SummaryFile or FinalWeightsFile)
                                && !new CheckpointStore(dir).AnyWritten() && File.Exists(Path.Combine(dir, RunConfigFile));
            throw new ResumeException($"'{dir}' holds the results of an earlier run ({string.Join(", ", results.Select(Path.GetFileName))}), which a new run there would delete; " +
                                      (stoppedEarly ? $"that run stopped before its first checkpoint: laperm train --resume {quoted} runs it again from step 0; or " : "") +
                                      "choose another --out, or give --overwrite to replace them");
        }
    }

    /// <summary>What a run leaves beside its metrics: written by the trainer at its best evaluation and at the end.</summary>
    private static readonly string[] EarlierRunResults = [SummaryFile, BestWeightsFile, FinalWeightsFile];

    /// <summary>
    /// The figures `laperm plot`, `trace` and `profile-weights` write into a run directory by
    /// default (NAME.png and NAME.svg): training, trace-LAYER, and WEIGHTS.profile (a checkpoint's
    /// as step-NNNNNNNN.profile).
    /// </summary>
    public const string TrainingFigure = "training", TraceFigurePrefix = "trace-", ProfileFigureSuffix = ".profile";

    /// <summary>
    /// The results of an earlier run in <paramref name="dir"/>, and the figures drawn from them
    /// (stale beside a new run's metrics). Figures only where a run was: a user's training.png in a
    /// directory that never held one is theirs.
    /// </summary>
    private static List<string> EarlierRunFiles(string dir)
    {
        bool hadRun = new[] { MetricsFileName, SummaryFile, InitialWeightsFile, RunConfigFile }.Any(name => File.Exists(Path.Combine(dir, name)));
        if (!hadRun) return [];
        string[] profiled = [Path.GetFileNameWithoutExtension(InitialWeightsFile), Path.GetFileNameWithoutExtension(BestWeightsFile), Path.GetFileNameWithoutExtension(FinalWeightsFile)];
        return
        [
            .. EarlierRunResults.Select(name => Path.Combine(dir, name)).Where(File.Exists),
            .. Directory.EnumerateFiles(dir).Where(path => Path.GetExtension(path) is ".png" or ".svg" && IsFigure(Path.GetFileNameWithoutExtension(path))).Order(StringComparer.Ordinal),
        ];

        bool IsFigure(string stem) =>
            stem == TrainingFigure || stem.StartsWith(TraceFigurePrefix, StringComparison.Ordinal)
            || (stem.EndsWith(ProfileFigureSuffix, StringComparison.Ordinal) && stem[..^ProfileFigureSuffix.Length] is var weights
                && (profiled.Contains(weights) || CheckpointStore.StepOf(weights) is not null));
    }

    private void ProbeWritable()
    {
        string dir = _options.Out!;
        try
        {
            Directory.CreateDirectory(dir);
            Directory.CreateDirectory(_store!.Directory);
            string probe = Path.Combine(_store.Directory, $".write-probe-{Environment.ProcessId}");
            using (var s = new FileStream(probe, FileMode.Create, FileAccess.Write, FileShare.None))
            {
                s.Write(new byte[4096]);
                s.Flush(flushToDisk: true);
            }
            File.Delete(probe);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new RunStorageException($"output directory '{dir}' cannot be written ({e.Message}); choose another --out or free space before training", e);
        }
        long needed = RequiredBytes();
        long free;
        try
        {
            free = new DriveInfo(Path.GetFullPath(dir)).AvailableFreeSpace;
        }
        catch (Exception e) when (e is IOException or ArgumentException or UnauthorizedAccessException)
        {
            return; // the file system does not say; a full disk is then caught at the write
        }
        if (free < needed)
            throw new RunStorageException(string.Create(CultureInfo.InvariantCulture,
                $"output directory '{dir}' has {free / 1048576.0:F1} MiB free, but this run's files need about {needed / 1048576.0:F1} MiB ({Options.Keep} checkpoints kept + 1 being written, initial/best/final weights); free space, lower --keep-checkpoints or choose another --out"));
    }

    /// <summary>About how many bytes the run directory needs at its peak: K + 1 checkpoints plus initial, best and final weights.</summary>
    private long RequiredBytes()
    {
        long weights = 4L * (_model.ParameterCount + _model.StateCount);
        long parameters = 4L * _model.ParameterCount;
        long optimizer = _options.Optimizer == OptimizerKind.Adam ? 2 * parameters : parameters;
        long traced = _options.Checkpoints.TraceReconnectionFor(_options.Device) ? 2 * parameters : 0;
        long checkpoint = weights + parameters + optimizer + traced + 64 * 1024;
        return checkpoint * (Math.Max(1, Options.Keep) + 1) + 3 * weights;
    }

    /// <summary>Right after initialisation: capture traffic baselines, save initial.safetensors, and on resume put the stored sorted initial rows in place so the reconnection plan is built from them.</summary>
    public void OnInitialized(Network network)
    {
        _network = network;
        var reconnected = _options.Reconnect ? network.Parameters.Where(p => _options.ReconnectOptions.Includes(p.Info)).ToList() : [];
        if (_options.Checkpoints.TraceReconnectionFor(_options.Device) && reconnected.Count > 0)
            Traffic = new ReconnectionTraffic(network, reconnected);
        if (_options.Out is not null && _resume is null)
            Checkpoint.Save(network, Path.Combine(_options.Out, InitialWeightsFile), Metadata(0));
        if (_resume is not null)
            foreach (var p in reconnected)
                network.Backend.Upload<float>(_resume.SortedInitial[p.Name].Values, p.Value);
    }

    /// <summary>Loads the checkpoint's tensors and counters into the run; null when starting fresh.</summary>
    public RunState? Restore(Optimizer optimizer, Reconnector? reconnector, Tensor<float> lossAndCorrect, MetricsWriter? metrics)
    {
        var network = _network ?? throw new InvalidOperationException("OnInitialized first");
        _optimizer = optimizer;
        _reconnector = reconnector;
        _lossAndCorrect = lossAndCorrect;
        _metrics = metrics;
        Guard = new NonFiniteGuard(network, lossAndCorrect, _options.Checkpoints.OnNonFinite, metrics, NonFiniteSentence);
        if (_resume is not { } r) return null;
        var backend = network.Backend;
        foreach (var (name, _, tensor) in network.CheckpointTensors())
            backend.Upload<float>(r.Weights[name].Values, tensor);
        for (int i = 0; i < network.Parameters.Count; i++)
        {
            var p = network.Parameters[i];
            backend.Upload<float>(r.Optimizer[OptimizerName(0, p.Name)].Values, optimizer.FirstMoments[i]);
            if (optimizer.SecondMoments[i] is { } second) backend.Upload<float>(r.Optimizer[OptimizerName(1, p.Name)].Values, second);
        }
        optimizer.RestoreSteps(r.State.OptimizerSteps);
        reconnector?.RestoreSyncs(r.State.Syncs);
        backend.Upload<float>([BitConverter.UInt32BitsToSingle(r.State.TrainLossSumBits), BitConverter.UInt32BitsToSingle(r.State.TrainCorrectSumBits)], lossAndCorrect);
        if (Traffic is not null && r.Traffic is not null) Traffic.Import(r.Traffic);
        Guard.SkippedSteps = r.State.SkippedSteps;
        var state = r.State;
        _resume = r with { Weights = [], Optimizer = [], SortedInitial = [], Traffic = null };
        return state;
    }

    /// <summary>The traffic of the sync that just happened, as the two objects a metrics sync line gains (null when not traced).</summary>
    public (Dictionary<string, double> SincePreviousSync, Dictionary<string, double> SinceInit)? MeasureTraffic() => Traffic?.Measure();

    /// <summary>True when a checkpoint is due after <paramref name="step"/> (besides the one at every epoch end).</summary>
    public bool IsDue(long step) =>
        _store is not null && ((Options.Every > 0 && step % Options.Every == 0) || Options.StopAfterStep == step);

    /// <summary>
    /// Writes a checkpoint of the run at <paramref name="state"/> (counters from the trainer; this
    /// adds the optimizer, reconnector and metrics file positions). Refuses to write non-finite
    /// weights. Throws <see cref="TrainingStoppedException"/> afterwards when this is the step to stop at.
    /// </summary>
    public void Write(RunState state)
    {
        if (_store is null) return;
        var network = _network!;
        var backend = network.Backend;
        var weights = network.CheckpointTensors().Select(t => Download(backend, t.Name, t.Shape, t.Tensor)).ToList();
        foreach (var w in weights)
        {
            long bad = NonFiniteGuard.CountNonFinite(w.Values);
            if (bad > 0)
                throw new NonFiniteException(string.Create(CultureInfo.InvariantCulture,
                    $"weight tensor '{w.Name}' holds {bad} non-finite values at step {state.Step}; no checkpoint written. {NonFiniteSentence()}"));
        }
        var sums = new float[2];
        backend.Download(_lossAndCorrect!, sums);
        var optimizerArrays = new List<NamedArray>();
        for (int i = 0; i < network.Parameters.Count; i++)
        {
            var p = network.Parameters[i];
            optimizerArrays.Add(Download(backend, OptimizerName(0, p.Name), p.Info.Shape, _optimizer!.FirstMoments[i]));
            if (_optimizer.SecondMoments[i] is { } second) optimizerArrays.Add(Download(backend, OptimizerName(1, p.Name), p.Info.Shape, second));
        }
        var sorted = new List<NamedArray>();
        if (_reconnector is not null)
        {
            var targets = _reconnector.Targets;
            for (int i = 0; i < targets.Count; i++)
            {
                var values = new float[targets[i].Weights.Length];
                _reconnector.DownloadSortedInitial(i, values);
                sorted.Add(new NamedArray(targets[i].Name, [.. targets[i].Weights.Shape.Dims], values));
            }
        }
        var full = state with
        {
            Seed = _options.Seed,
            Syncs = _reconnector?.Syncs ?? 0,
            OptimizerSteps = _optimizer!.Steps,
            SkippedSteps = Guard?.SkippedSteps ?? 0,
            TrainLossSumBits = BitConverter.SingleToUInt32Bits(sums[0]),
            TrainCorrectSumBits = BitConverter.SingleToUInt32Bits(sums[1]),
            MetricsBytes = _metrics?.SyncToDisk() ?? (File.Exists(MetricsPath) ? new FileInfo(MetricsPath).Length : 0),
        };
        var optimizerMetadata = new Dictionary<string, string>
        {
            ["optimizer"] = _optimizer.Kind == OptimizerKind.Adam ? "adam" : "sgd",
            ["t"] = _optimizer.Steps.ToString(CultureInfo.InvariantCulture),
            ["momentum"] = _optimizer.Momentum.ToString("R", CultureInfo.InvariantCulture),
        };
        var files = new List<(string, Action<string>)>
        {
            (WeightsFile, path => SafeTensors.Write(path, weights, Metadata(state.Step))),
            (SortedInitialFile, path => SafeTensors.Write(path, sorted, new Dictionary<string, string> { ["layout"] = "each row of each reconnected tensor sorted ascending (LaPerm's sorted0)" })),
            (OptimizerFile, path => SafeTensors.Write(path, optimizerArrays, optimizerMetadata)),
            (StateFile, path => AtomicFile.WriteAllText(path, full.ToJson())),
            (ConfigFile, path => AtomicFile.WriteAllText(path, _configJson)),
        };
        if (Traffic is not null) files.Add((TrafficFile, path => SafeTensors.Write(path, Traffic.Export())));
        string previous = StorageFailureSentence();
        try
        {
            _lastCheckpoint = _store.Write(state.Step, files, Options.Keep);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // The checkpoint may be in place already (only replacing `latest` or pruning failed): then it is the last good one.
            string committed = Path.Combine(_store.Directory, CheckpointStore.NameOf(state.Step));
            if (Directory.Exists(committed) && CheckpointStore.Verify(committed, files.Select(f => f.Item1)) is null)
            {
                _lastCheckpoint = committed;
                previous = StorageFailureSentence();
            }
            throw new RunStorageException($"cannot write checkpoint {CheckpointStore.NameOf(state.Step)} in '{_store.Directory}' ({e.Message}). {previous}", e);
        }
        if (Options.StopAfterStep == state.Step) throw new TrainingStoppedException(state.Step, _lastCheckpoint);
    }

    /// <summary>The exception that ends an interrupted run after <paramref name="step"/> (its checkpoint, if any, is written).</summary>
    public TrainingInterruptedException Interrupted(long step) => new(step, _store is null ? null : _lastCheckpoint);

    /// <summary>
    /// Said when non-finite values stop the run. Resumed as it is, a run meets the same values
    /// again (it is deterministic), so the sentence names the resume that leaves such steps out.
    /// </summary>
    private string NonFiniteSentence() => _lastCheckpoint is null
        ? "No checkpoint was written yet."
        : $"The last good checkpoint '{_lastCheckpoint}' is intact; resumed as it is, the run meets the same step again: " +
          $"laperm train --resume {Shell.Quote(_options.Out!)} --on-nan skip-step continues from it leaving such steps out.";

    /// <summary>
    /// Said when a checkpoint cannot be written: nothing about the run is wrong, so once the
    /// directory can be written again (space freed, permissions mended) a plain resume continues.
    /// </summary>
    private string StorageFailureSentence() => _lastCheckpoint is null
        ? $"No checkpoint was written yet; once '{_options.Out}' can be written (free space, permissions), laperm train --resume {Shell.Quote(_options.Out!)} runs it again from step 0."
        : $"The last good checkpoint '{_lastCheckpoint}' is intact; once '{_options.Out}' can be written (free space, permissions), laperm train --resume {Shell.Quote(_options.Out!)} continues from it.";

    private Dictionary<string, string> Metadata(long step) => Checkpoint.Metadata(_model, _options, step);

    private string OptimizerName(int moment, string parameter) =>
        _options.Optimizer == OptimizerKind.Adam ? (moment == 0 ? "adam/m/" : "adam/v/") + parameter : "sgd/velocity/" + parameter;

    private static NamedArray Download(IBackend backend, string name, Shape shape, Tensor<float> tensor)
    {
        var values = new float[tensor.Length];
        backend.Download(tensor, values);
        return new NamedArray(name, [.. shape.Dims], values);
    }

    // ---- resume ---------------------------------------------------------------------------------

    /// <summary>
    /// The newest checkpoint that is intact and was written by this configuration. A broken one
    /// (files missing or changed, unreadable) is set aside as rejected-*. An intact one written
    /// under another configuration is not broken: when every intact checkpoint is such, nothing is
    /// resumed or started over (the run stops with the first difference, those checkpoints in
    /// place); when an older one of this configuration is resumed, the newer foreign ones are set
    /// aside as other-config-* (kept, but no longer ranked above the resumed run's own).
    /// </summary>
    private Loaded? FindLatestValid()
    {
        var store = _store!;
        var candidates = store.Checkpoints();
        string? otherConfiguration = null;
        var foreign = new List<string>();
        foreach (var (step, path) in candidates)
        {
            try
            {
                var loaded = Load(path);
                if (loaded.State.Step != step) throw new ResumeException($"its state.json says step {loaded.State.Step}");
                foreach (var newer in foreign)
                {
                    _log?.WriteLine($"laperm: warning: setting '{newer}' aside as other-config-{Path.GetFileName(newer)} (written under another configuration).");
                    store.SetAsideOtherConfiguration(newer);
                }
                return loaded;
            }
            catch (ConfiguredDifferently e)
            {
                _log?.WriteLine($"laperm: warning: skipping checkpoint '{path}': {e.Message.TrimEnd('.')}.");
                otherConfiguration ??= e.Message;
                foreign.Add(path);
            }
            catch (Exception e) when (e is ResumeException or WeightsFormatException or IOException or UnauthorizedAccessException)
            {
                _log?.WriteLine($"laperm: warning: skipping checkpoint '{path}': {e.Message.TrimEnd('.')}.");
                store.Reject(path);
            }
        }
        if (otherConfiguration is not null)
            throw new ResumeException($"no checkpoint in '{store.Directory}' matches the run's configuration ('{RunConfigFile}'): the newest intact one {otherConfiguration.TrimEnd('.')}; those checkpoints were left in place");
        return null;
    }

    /// <summary>An intact checkpoint of another configuration: not broken, so never rejected.</summary>
    private sealed class ConfiguredDifferently(string message) : Exception(message);

    private Loaded Load(string path)
    {
        // Every listed file intact first, then the configuration, then what this configuration
        // writes beyond every run's files: an intact checkpoint of a configuration that traces the
        // reconnection otherwise (another device) was set aside as damaged for lacking the trace.
        var required = new List<string> { WeightsFile, SortedInitialFile, OptimizerFile, StateFile, ConfigFile };
        bool traced = _options.Checkpoints.TraceReconnectionFor(_options.Device);
        if (CheckpointStore.Verify(path, required) is { } problem) throw new ResumeException(problem);
        string configPath = Path.Combine(path, ConfigFile);
        string? mismatch = ConfigMismatch(File.ReadAllText(configPath), _configJson, $"'{configPath}'");
        if (mismatch is not null) throw new ConfiguredDifferently($"was written by a run configured differently ({mismatch})");
        if (traced && _options.Reconnect && CheckpointStore.Unlisted(path, [TrafficFile]) is { } untraced) throw new ResumeException(untraced);
        var state = RunState.FromJson(File.ReadAllText(Path.Combine(path, StateFile)), Path.Combine(path, StateFile));

        var weights = ReadExpecting(Path.Combine(path, WeightsFile), _model.Parameters.Select(p => (p.Name, p.Shape)).Concat(_model.State.Select(s => (s.Name, new Shape(s.Length)))));
        var reconnected = _options.Reconnect ? _model.Parameters.Where(p => _options.ReconnectOptions.Includes(p)).ToList() : [];
        var sorted = ReadExpecting(Path.Combine(path, SortedInitialFile), reconnected.Select(p => (p.Name, p.Shape)));
        foreach (var p in reconnected)
        {
            var row = sorted[p.Name].Values;
            for (int i = 1; i < row.Length; i++)
                if (i % p.RowLength != 0 && Reconnection.OrderKey(row[i - 1]) > Reconnection.OrderKey(row[i]))
                    throw new ResumeException($"'{Path.Combine(path, SortedInitialFile)}': a row of '{p.Name}' is not sorted");
            // Initial weights are finite; NaN rows would sort as "sorted" and reconnect every weight to NaN.
            if (NonFiniteGuard.CountNonFinite(row) > 0)
                throw new ResumeException($"'{Path.Combine(path, SortedInitialFile)}': tensor '{p.Name}' holds non-finite values");
            if (NonFiniteGuard.CountNonFinite(weights[p.Name].Values) > 0)
                throw new ResumeException($"'{Path.Combine(path, WeightsFile)}': tensor '{p.Name}' holds non-finite values");
        }
        var optimizerPath = Path.Combine(path, OptimizerFile);
        var optimizerExpected = _model.Parameters.SelectMany(p => _options.Optimizer == OptimizerKind.Adam
            ? new[] { (OptimizerName(0, p.Name), p.Shape), (OptimizerName(1, p.Name), p.Shape) }
            : [(OptimizerName(0, p.Name), p.Shape)]);
        var optimizer = ReadExpecting(optimizerPath, optimizerExpected);
        var optimizerMetadata = SafeTensors.Read(optimizerPath).Metadata;
        if (!optimizerMetadata.TryGetValue("t", out var t) || t != state.OptimizerSteps.ToString(CultureInfo.InvariantCulture))
            throw new ResumeException($"'{optimizerPath}' records optimizer step t = {t ?? "nothing"}, its state.json says {state.OptimizerSteps}");
        Dictionary<string, NamedArray>? traffic = null;
        if (traced && reconnected.Count > 0)
            traffic = ReadExpecting(Path.Combine(path, TrafficFile),
                reconnected.SelectMany(p => new[] { ("initial/" + p.Name, p.Shape), ("previous_sync/" + p.Name, p.Shape) }));
        return new Loaded(path, state, weights, sorted, optimizer, optimizerMetadata, traffic);
    }

    /// <summary>Reads a safetensors file and checks it holds exactly the expected names with the expected shapes.</summary>
    private static Dictionary<string, NamedArray> ReadExpecting(string path, IEnumerable<(string Name, Shape Shape)> expected)
    {
        var arrays = SafeTensors.Read(path).Tensors.ToDictionary(t => t.Name);
        var wanted = expected.ToList();
        foreach (var (name, shape) in wanted)
        {
            if (!arrays.TryGetValue(name, out var array)) throw new ResumeException($"'{path}' has no tensor '{name}'");
            if (!array.Shape.SequenceEqual(shape.Dims))
                throw new ResumeException($"'{path}': tensor '{name}' has shape ({string.Join(", ", array.Shape)}), expected {shape}");
        }
        if (arrays.Count != wanted.Count)
            throw new ResumeException($"'{path}' holds {arrays.Count} tensors, expected {wanted.Count}");
        return arrays;
    }

    /// <summary>
    /// The run configuration's fields set by flags that apply to one command (allowed with
    /// --resume): they may differ between the interrupted and the resumed run, changing no result.
    /// </summary>
    public static readonly IReadOnlySet<string> FlagsOfOneCommand = new HashSet<string>(["threads", "checkpoint_every", "keep_checkpoints", "on_nan", "verify_invariants"]);

    // Fields added after the first format of config.json, with the value an older one meant by leaving them out.
    private static readonly Dictionary<string, bool> LaterFlags = new() { ["stop_at_target"] = false };

    /// <summary>The first field where the checkpoint's configuration (<paramref name="stored"/>, in <paramref name="where"/>) and this run's differ, in words; null when none does.</summary>
    private static string? ConfigMismatch(string stored, string current, string where)
    {
        JsonObject a, b;
        try
        {
            a = JsonNode.Parse(stored)!.AsObject();
            b = JsonNode.Parse(current)!.AsObject();
        }
        catch (Exception e) when (e is System.Text.Json.JsonException or InvalidOperationException or NullReferenceException)
        {
            return $"{where} is not a JSON object";
        }
        foreach (var (key, value) in b)
        {
            if (FlagsOfOneCommand.Contains(key)) continue;
            if (!a.ContainsKey(key) && LaterFlags.TryGetValue(key, out bool absent) && value?.GetValueKind() is System.Text.Json.JsonValueKind.True or System.Text.Json.JsonValueKind.False && value.GetValue<bool>() == absent) continue;
            if (key == "device" && a[key]?.GetValueKind() == System.Text.Json.JsonValueKind.String && value?.GetValueKind() == System.Text.Json.JsonValueKind.String
                && RunConfiguration.DeviceKind(a[key]!.GetValue<string>()) == RunConfiguration.DeviceKind(value.GetValue<string>())) continue;
            if (!JsonNode.DeepEquals(a[key], value))
                return $"field '{key}' is {a[key]?.ToJsonString() ?? "missing"} in {where}, {value?.ToJsonString() ?? "null"} in this run's configuration";
        }
        return null;
    }

    /// <summary>Cuts metrics.jsonl back to what it held at the checkpoint, so resumed lines follow on exactly.</summary>
    internal static void TrimMetrics(string path, long bytes, TextWriter? log)
    {
        if (!File.Exists(path))
        {
            if (bytes > 0) log?.WriteLine($"laperm: warning: '{path}' is missing; the resumed run's metrics start at the checkpoint.");
            return;
        }
        long length = new FileInfo(path).Length;
        if (length < bytes)
        {
            log?.WriteLine($"laperm: warning: '{path}' is shorter than at the checkpoint ({length} < {bytes} bytes); keeping it as it is.");
            return;
        }
        using var stream = new FileStream(path, FileMode.Open, FileAccess.ReadWrite, FileShare.None);
        // Every line ends with its break, so the checkpoint's length ends one: cutting anywhere else
        // would glue the resumed run's first line onto half a line.
        if (bytes > 0)
        {
            stream.Position = bytes - 1;
            if (stream.ReadByte() != '\n')
            {
                log?.WriteLine($"laperm: warning: '{path}' has no line break at the checkpoint's length ({bytes} bytes); keeping it as it is.");
                return;
            }
        }
        stream.SetLength(bytes);
        stream.Flush(flushToDisk: true);
    }

    /// <summary>SHA-256 of a file (summary.json's final_weights_sha256).</summary>
    public static string Sha256(string path) => CheckpointStore.Hash(path).Sha256;
}
