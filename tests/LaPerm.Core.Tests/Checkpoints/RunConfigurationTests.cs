using LaPerm.Core.Checkpoints;
using LaPerm.Core.LaPerm;
using LaPerm.Core.Model;
using LaPerm.Core.Training;

namespace LaPerm.Core.Tests.Checkpoints;

public sealed class RunConfigurationTests
{
    [Fact]
    public void EveryOptionSurvivesTheRoundTrip()
    {
        var o = new TrainingOptions
        {
            Model = "conv7", Data = "fashion-mnist", Epochs = 7, Batch = 33, K = SyncSchedule.Parse("0:100,5:400"), LearningRate = 0.0123456789f,
            LearningRateSchedule = LearningRateSchedule.Parse("piecewise:80=0.1,120=0.01"), Optimizer = OptimizerKind.Sgd, Momentum = 0.8f, LossReduction = LossReduction.Sum,
            Init = new InitOptions(0.08f, [4.0 / 7, 1.0 / 3], 0.25), SkipBias = true, SkipBatchNorm = true, Augment = "mnist", Seed = ulong.MaxValue,
            Threads = 3, EvalEvery = 17, TrainEvalSize = 99, LimitTrain = 1000, LimitTest = null, Reconnect = false, VerifyInvariants = true,
            Device = "cpu", Preset = "conv7-mnist", Out = "ignored", GpuMath = "tf32", Cudnn = "conv,bn", ChannelReduction = "per-channel",
            Checkpoints = new CheckpointOptions { Every = 9, Keep = 4, OnNonFinite = NonFinitePolicy.SkipStep, TraceReconnection = false },
        };
        var spec = BuiltInModels.Conv7();
        var (back, backSpec) = RunConfiguration.FromJson(RunConfiguration.ToJson(o, spec), "config.json", "moved");
        Assert.Equal(ModelDefinition.ToJson(spec), ModelDefinition.ToJson(backSpec));
        Assert.Equal("moved", back.Out);
        Assert.True(back.Checkpoints.Resume);
        Assert.Equal(o.Init.Keep, back.Init.Keep);
        Assert.Equal(LossReduction.Sum, back.LossReduction); // the F1/F2 presets' batch-summed loss must survive a resume
        Assert.Equal(RunConfiguration.ToJson(o, spec), RunConfiguration.ToJson(back with { Init = o.Init }, backSpec));
        Assert.Equal(BitConverter.SingleToUInt32Bits(o.LearningRate), BitConverter.SingleToUInt32Bits(back.LearningRate));
    }

    [Theory]
    [InlineData("{}", "format")]
    [InlineData("[1]", "JSON object")]
    [InlineData("{\"format\":\"laperm-run-config\",\"version\":1}", "model_spec")]
    public void ABadConfigurationNamesTheFileAndField(string text, string expected)
    {
        var e = Assert.Throws<ResumeException>(() => RunConfiguration.FromJson(text, "dir/config.json", "dir"));
        Assert.Contains("dir/config.json", e.Message, StringComparison.Ordinal);
        Assert.Contains(expected, e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("batch", "-5")]
    [InlineData("epochs", "0")]
    [InlineData("lr", "0")]
    [InlineData("keep_checkpoints", "0")]
    [InlineData("limit_test", "-1")]
    [InlineData("lr", "1e39")]             // a float infinity: passed 'lr > 0', then failed as an unhandled exception when written back
    [InlineData("momentum", "-5")]
    [InlineData("momentum", "1")]
    [InlineData("threads", "100000")]      // ran out of memory on scratch buffers
    [InlineData("target_accuracy", "5")]
    [InlineData("init_prune", "1.5")]      // was reported as '--prune must be in [0, 1)', a flag the user never gave
    [InlineData("init_keep", "[0.5,2]")]
    public void AValueNoRunCanHaveNamesTheFileAndFieldNotAFlag(string field, string value)
    {
        // An edited configuration was reported as '--batch must be positive', a flag the user never gave.
        var e = ReadEdited(field, value);
        Assert.Contains($"run configuration 'dir/run-config.json': field '{field}' is {value}", e.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("--", e.Message, StringComparison.Ordinal);
    }

    /// <summary>The error of reading a valid configuration with <paramref name="field"/> set to the JSON <paramref name="value"/>.</summary>
    private static ResumeException ReadEdited(string field, string value)
    {
        var json = System.Text.Json.Nodes.JsonNode.Parse(RunConfiguration.ToJson(new TrainingOptions { Model = "f1", LimitTest = 100 }, BuiltInModels.F1()))!.AsObject();
        json[field] = System.Text.Json.Nodes.JsonNode.Parse(value);
        return Assert.Throws<ResumeException>(() => RunConfiguration.FromJson(json.ToJsonString(), "dir/run-config.json", "dir"));
    }

    /// <summary>Each of these escaped as another exception (a crash of --resume), or was taken as something else (an unknown optimizer as Adam).</summary>
    [Theory]
    [InlineData("format", "1", "format 'laperm-run-config'")]
    [InlineData("init_keep", "[null]", "field 'init_keep' holds null")]
    [InlineData("optimizer", "\"rmsprop\"", "field 'optimizer' is 'rmsprop', expected 'adam' or 'sgd'")]
    [InlineData("augment", "\"bogus\"", "field 'augment' is 'bogus', expected none, mnist, cifar or shift-flip")]
    [InlineData("epochs", "1099511627776", "field 'epochs' is 1099511627776, expected a whole number (32-bit)")]
    [InlineData("lr", "\"fast\"", "field 'lr' is \"fast\", expected a number")]
    [InlineData("preset", "5", "field 'preset' is 5, expected a string")]
    public void AFieldOfTheWrongKindIsAResumeErrorNamingIt(string field, string value, string expected)
    {
        var e = ReadEdited(field, value);
        Assert.Contains("run configuration 'dir/run-config.json'", e.Message, StringComparison.Ordinal);
        Assert.Contains(expected, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void ChangedFractionComparesBitPatterns()
    {
        Assert.Equal(0.5, ReconnectionTraffic.ChangedFraction([1f, -0f, 3f, float.NaN], [1f, 0f, 4f, float.NaN]));
        // One at a time, so a comparison by value (where -0 == +0 and NaN != NaN) cannot pass.
        Assert.Equal(1, ReconnectionTraffic.ChangedFraction([-0f], [0f]));
        Assert.Equal(0, ReconnectionTraffic.ChangedFraction([float.NaN], [float.NaN]));
        Assert.Equal(1, ReconnectionTraffic.ChangedFraction([BitConverter.UInt32BitsToSingle(0xFFC00000u)], [BitConverter.UInt32BitsToSingle(0x7FC00000u)]));   // two NaNs, two signs
        Assert.Equal(0, ReconnectionTraffic.ChangedFraction([], []));
    }
}
