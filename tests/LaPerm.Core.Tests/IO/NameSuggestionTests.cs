using LaPerm.Core.IO;

namespace LaPerm.Core.Tests.IO;

public sealed class NameSuggestionTests
{
    private static readonly string[] Flags = ["--epochs", "--batch", "--model", "--quiet", "--k", "--lr", "--lr-schedule", "--out"];
    private static readonly string[] Models = ["f1", "f2", "lenet300", "conv7", "conv2", "resnet20", "resnet50c"];
    private static readonly string[] Presets = ["conv7-mnist", "f1-mnist", "f2-mnist", "conv2-cifar10"];

    [Theory]
    [InlineData("--epoch", "--epochs")]       // a letter missing
    [InlineData("--modle", "--model")]        // two letters swapped
    [InlineData("--Batch", "--batch")]        // case
    [InlineData("--lr-schedul", "--lr-schedule")]
    [InlineData("--bogus", null)]             // nothing close
    [InlineData("--x", null)]                 // short: one edit away from --k and --lr alike would be a guess
    public void AMistypedFlagIsMatchedToTheClosestOne(string typed, string? expected) =>
        Assert.Equal(expected, NameSuggestion.Closest(typed, Flags));

    [Theory]
    [InlineData("lenet", "lenet300")]         // the only model that begins so
    [InlineData("resnet5", "resnet50c")]      // as close as resnet20, and begins with it
    [InlineData("conv7x", "conv7")]
    [InlineData("f3", "f1")]
    [InlineData("vgg16", null)]
    public void AMistypedModelIsMatchedToTheClosestOne(string typed, string? expected) =>
        Assert.Equal(expected, NameSuggestion.Closest(typed, Models));

    [Theory]
    [InlineData("f1", "f1-mnist")]            // the only preset beginning with it
    [InlineData("conv", null)]                // two begin with it: no guess
    [InlineData("conv7-mnsit", "conv7-mnist")]
    public void AMistypedPresetIsMatchedOnlyWhenOneFits(string typed, string? expected) =>
        Assert.Equal(expected, NameSuggestion.Closest(typed, Presets));

    [Fact]
    public void DidYouMeanIsEmptyWithoutACandidate()
    {
        Assert.Equal(" (did you mean --epochs?)", NameSuggestion.DidYouMean("--epoch", Flags));
        Assert.Equal("", NameSuggestion.DidYouMean("--bogus", Flags));
    }
}
