using LaPerm.Core.Backend;
using LaPerm.Core.Data;
using LaPerm.Core.LaPerm;
using LaPerm.Core.Model;
using LaPerm.Core.Training;
using LaPerm.Cpu;

namespace LaPerm.Core.Tests.LaPerm;

public sealed class ReconnectorTests
{
    private static readonly Lazy<DataSplit> Mnist = new(() => DataSource.Load("mnist", 512, 128));

    private static ModelSpec SmallModel() => new("small", [1, 28, 28],
    [
        new Conv2dSpec(4, 5, Stride: 2), new ReluSpec(), new BatchNormSpec(),
        new FlattenSpec(), new DenseSpec(16), new ReluSpec(), new DenseSpec(10, Bias: false),
    ]);

    private static Dictionary<string, float[]> Download(Network n)
    {
        var result = new Dictionary<string, float[]>();
        foreach (var p in n.Parameters)
        {
            var v = new float[p.Value.Length];
            n.Backend.Download(p.Value, v);
            result[p.Name] = v;
        }
        return result;
    }

    private static bool RowsArePermutations(ParameterInfo p, float[] current, float[] initial)
    {
        for (int r = 0; r < p.Rows; r++)
        {
            var sorted = new float[p.RowLength];
            Reconnection.SortRow(initial.AsSpan(r * p.RowLength, p.RowLength), sorted);
            if (!Reconnection.IsPermutationOf(current.AsSpan(r * p.RowLength, p.RowLength), sorted)) return false;
        }
        return true;
    }

    [Theory]
    [InlineData(false, false)]
    [InlineData(true, true)]
    [InlineData(true, false)]
    [InlineData(false, true)]
    public void AfterARealShortRunEverySynchronisedRowIsItsInitialRowPermutedAndSkippedTensorsAreNot(bool skipBias, bool skipBn)
    {
        var options = new TrainingOptions
        {
            Model = "small", Epochs = 1, Batch = 32, K = SyncSchedule.Constant(4), Seed = 8, Threads = 2,
            SkipBias = skipBias, SkipBatchNorm = skipBn, VerifyInvariants = true,
        };
        var model = new ModelDefinition(SmallModel());
        var initial = Initializer.Compute(model, options.Init, options.Seed);
        using var backend = new CpuBackend(2);
        var trainer = new Trainer(options, model, Mnist.Value, backend);
        var summary = trainer.Run();
        using var network = trainer.Network!;
        Assert.Equal(16, summary.Steps);
        Assert.Equal(4, summary.Syncs);
        var final = Download(network);
        foreach (var p in model.Parameters)
        {
            bool skipped = (p.Kind == ParameterKind.Bias && skipBias) || (p.Kind == ParameterKind.BatchNorm && skipBn);
            Assert.Equal(!skipped, summary.ReconnectedTensors.Contains(p.Name));
            // Training moved every skipped tensor and every large synchronised one (a 4-value row may keep its order).
            if (skipped || p.Shape.Length > 100) Assert.NotEqual(initial[p.Name], final[p.Name]);
            Assert.True(RowsArePermutations(p, final[p.Name], initial[p.Name]) == !skipped,
                $"{p.Name}: {(skipped ? "a skipped tensor is still a permutation" : "a synchronised tensor is not a permutation")} of its initial values");
        }
    }

    [Fact]
    public void ASyncPutsEachInitialValueAtTheOptimizersRankAndKeepsOptimizerState()
    {
        var model = new ModelDefinition(SmallModel());
        using var backend = new CpuBackend(2);
        using var network = new Network(model, backend);
        Initializer.Apply(network, InitOptions.HeUniform, 3);
        var initial = Download(network);
        using var reconnector = new Reconnector(network, new ReconnectOptions());
        using var optimizer = new Optimizer(network, OptimizerKind.Adam);
        var pass = network.GetPass(8);
        var data = Mnist.Value.Train;
        var images = new float[pass.Input.Length];
        var labels = new int[8];
        data.FillBatch([0, 1, 2, 3, 4, 5, 6, 7], images, labels);
        backend.Upload<float>(images, pass.Input);
        backend.Upload<int>(labels, pass.Labels);
        using var sums = backend.Allocate<float>(new Shape(2));
        for (int s = 0; s < 3; s++)
        {
            backend.BeginStep(optimizer.NextStep(s + 1, 0, 0, 8, 1e-2f));
            pass.Forward(new ForwardMode(true, 1));
            pass.Loss(sums);
            pass.Backward();
            optimizer.Step();
        }
        var before = Download(network);
        float[][] Moments() => [.. optimizer.FirstMoments.Concat(optimizer.SecondMoments.Select(v => v!)).Select(t =>
        {
            var values = new float[t.Length];
            backend.Download(t, values);
            return values;
        })];
        var momentsBefore = Moments();
        Assert.Contains(momentsBefore, m => m.Any(v => v != 0));   // three Adam steps filled them
        reconnector.Sync();
        var after = Download(network);
        foreach (var p in model.Parameters)
        {
            var expected = before[p.Name].ToArray();
            for (int r = 0; r < p.Rows; r++)
            {
                var sorted0 = new float[p.RowLength];
                Reconnection.SortRow(initial[p.Name].AsSpan(r * p.RowLength, p.RowLength), sorted0);
                Reconnection.SyncRowBruteForce(expected.AsSpan(r * p.RowLength, p.RowLength), sorted0);
            }
            Assert.Equal(expected.Select(BitConverter.SingleToUInt32Bits), after[p.Name].Select(BitConverter.SingleToUInt32Bits));
        }
        Assert.Equal(3, optimizer.Steps); // a sync does not touch the optimizer: not its step count,
        var momentsAfter = Moments();      // nor Adam's m and v, bit for bit
        for (int i = 0; i < momentsBefore.Length; i++)
            Assert.Equal(momentsBefore[i].Select(BitConverter.SingleToUInt32Bits), momentsAfter[i].Select(BitConverter.SingleToUInt32Bits));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void VerifyInvariantsNamesTheTensorAndRowThatIsNoLongerAPermutation(bool lastRow)
    {
        var model = new ModelDefinition(SmallModel());
        using var backend = new CpuBackend(1);
        using var network = new Network(model, backend);
        Initializer.Apply(network, InitOptions.HeUniform, 3);
        using var reconnector = new Reconnector(network, new ReconnectOptions());
        reconnector.Sync();
        reconnector.VerifyInvariants();
        var dense = network.Parameters.Single(p => p.Name == "dense1/kernel");
        var w = new float[dense.Value.Length];
        backend.Download(dense.Value, w);
        int row = lastRow ? dense.Info.Rows - 1 : 3;
        w[row * dense.Info.RowLength + 7] = BitConverter.UInt32BitsToSingle(BitConverter.SingleToUInt32Bits(w[row * dense.Info.RowLength + 7]) ^ 1);
        backend.Upload<float>(w, dense.Value);
        var e = Assert.Throws<InvariantViolationException>(reconnector.VerifyInvariants);
        Assert.Contains($"row {row} of 'dense1/kernel'", e.Message, StringComparison.Ordinal);
    }

    private sealed class Recorder : ITrainingObserver
    {
        public List<long> SyncSteps { get; } = [];
        public List<EvaluationRecord> Evaluations { get; } = [];
        public void OnStep(long step, long totalSteps, int epoch, double runningLoss, double runningAccuracy) { }
        public void OnEvaluation(EvaluationRecord record) => Evaluations.Add(record);
        public void OnSync(long step, int syncs, double seconds) => SyncSteps.Add(step);
    }

    [Fact]
    public void TheTrainerTakesKAndTheLearningRateFromTheEpochOfEachStep()
    {
        // 16 steps an epoch: k = 4 in epoch 0 (steps 1..16), k = 5 in epoch 1 (steps 17..32); lr halves per epoch.
        var options = new TrainingOptions
        {
            Model = "small", Epochs = 2, Batch = 32, K = SyncSchedule.Parse("0:4,1:5"), Seed = 8, Threads = 2,
            LearningRate = 1e-3f, LearningRateSchedule = LearningRateSchedule.Parse("exp:0.5"), EvalEvery = 8,
        };
        using var backend = new CpuBackend(2);
        var recorder = new Recorder();
        var trainer = new Trainer(options, new ModelDefinition(SmallModel()), Mnist.Value, backend, recorder);
        var summary = trainer.Run();
        trainer.Network!.Dispose();
        Assert.Equal(32, summary.Steps);
        // ... and the last step (32) is no sync step, so the run ends with one more (the final weights are a permutation).
        Assert.Equal([4L, 8, 12, 16, 20, 25, 30, 32], recorder.SyncSteps);
        Assert.Equal(8, summary.Syncs);
        Assert.Equal([(8L, 0, 1e-3f), (16L, 0, 1e-3f), (24L, 1, 5e-4f)], recorder.Evaluations.Where(r => r.Step < 32).Select(r => (r.Step, r.Epoch, r.LearningRate)));
    }

    [Fact]
    public void SyncScheduleParsesConstantAndPerEpochForms()
    {
        var constant = SyncSchedule.Parse("250");
        Assert.True(constant.IsSyncStep(500, 3));
        Assert.False(constant.IsSyncStep(499, 3));
        var perEpoch = SyncSchedule.Parse("0:100,5:400");
        Assert.Equal(100, perEpoch.KAt(4));
        Assert.Equal(400, perEpoch.KAt(5));
        Assert.True(perEpoch.IsSyncStep(300, 0));
        Assert.False(perEpoch.IsSyncStep(300, 6));
        Assert.Equal("0:100,5:400", perEpoch.ToString());
        foreach (var bad in new[] { "0", "-5", "x", "3:100", "0:100,0:200", "" })
            Assert.Throws<FormatException>(() => SyncSchedule.Parse(bad));
    }
}
