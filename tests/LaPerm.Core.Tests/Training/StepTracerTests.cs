using LaPerm.Core.Data;
using LaPerm.Core.Model;
using LaPerm.Core.Training;
using LaPerm.Cpu;

namespace LaPerm.Core.Tests.Training;

public sealed class StepTracerTests
{
    private sealed class RecordingTracer : IStepTracer
    {
        public List<string> Events { get; } = [];
        private int _depth;
        public int MaxDepth { get; private set; }

        public void BeginStep(long step) => Events.Add($"begin {step}");
        public void EndStep(long step) => Events.Add($"end {step}");

        public void Push(string phase)
        {
            Events.Add(phase);
            MaxDepth = Math.Max(MaxDepth, ++_depth);
        }

        public void Pop()
        {
            Assert.True(--_depth >= 0, "Pop without Push");
            Events.Add("/");
        }

        public int Depth => _depth;
    }

    [Fact]
    public void EveryStepIsBracketedAndItsPhasesNestInLoopOrder()
    {
        var data = DataSource.Load("mnist", 96, 64);
        var options = new TrainingOptions { Model = "f2", Epochs = 1, Batch = 32, K = Core.LaPerm.SyncSchedule.Constant(2), Seed = 3, Threads = 1 };
        using var backend = new CpuBackend(1);
        var tracer = new RecordingTracer();
        var trainer = new Trainer(options, new ModelDefinition(BuiltInModels.F2()), data, backend) { Tracer = tracer };
        var summary = trainer.Run();
        trainer.Network!.Dispose();

        Assert.Equal(0, tracer.Depth);
        Assert.Equal(1, tracer.MaxDepth); // phases never nest inside each other
        for (long step = 1; step <= summary.Steps; step++)
        {
            int begin = tracer.Events.IndexOf($"begin {step}"), end = tracer.Events.IndexOf($"end {step}");
            Assert.True(begin >= 0 && end > begin, $"step {step} is not bracketed");
            var inside = tracer.Events.GetRange(begin + 1, end - begin - 1).Where(e => e != "/").ToList();
            var expected = new List<string> { TrainingPhase.Data, TrainingPhase.Forward, TrainingPhase.Backward, TrainingPhase.Optimizer };
            if (step % 2 == 0) expected.Add(TrainingPhase.Reconnect); // k = 2
            Assert.Equal(expected, inside);
        }
        Assert.Contains(TrainingPhase.Evaluate, tracer.Events);
    }
}
