using LaPerm.Core.Backend;

namespace LaPerm.Cpu.Tests;

/// <summary>
/// Sizes that would wrap a 32-bit length: the convolutions refuse them with an exception (or take a
/// path that fits) instead of letting a wrapped length pass a check and a raw-pointer kernel write
/// past an array. Each geometry below crashed the process before.
/// </summary>
public sealed class ConvLimitsTests
{
    [Fact]
    public void AGeometryWhoseTensorsDoNotFitAnIntIsRefused()
    {
        using var rig = new TestRig();
        // 65,537 x 65,536 inputs: InputLength wraps to 65,536, which a 65,536-float x would have matched.
        var g = new ConvGeometry(1, 1, 65537, 65536, 1, 1, 1, 1, 0, 0, 4, 8);
        var x = rig.Input(new float[65536], 65536);
        var w = rig.Input([1f], 1);
        var y = rig.Poisoned(32);
        var e = Assert.Throws<ArgumentException>(() => rig.Backend.ConvForward(g, x, w, y));
        Assert.Contains("more than 2,147,483,647 elements", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void ADataGradientWhoseColumnsExceedOneArrayIsRefused()
    {
        using var rig = new TestRig();
        // K x P = 47 * 47 * 1024 * 1024 = 2,316,304,384 column floats for one image.
        var g = ConvGeometry.Create(1, 1, 1024, 1024, 1, 47, 47, 1, true);
        var dy = rig.Input(new float[g.OutputLength], g.OutputLength);
        var w = rig.Input(new float[g.WeightLength], g.WeightLength);
        var dx = rig.Poisoned(g.InputLength);
        var e = Assert.Throws<NotSupportedException>(() => rig.Backend.ConvBackwardData(g, dy, w, dx));
        Assert.Contains("2,316,304,384 column floats per image", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void AStrideWhosePhaseSplitPlaneWouldWrapTakesAnotherPathWithTheRightResult()
    {
        using var rig = new TestRig();
        // Stride 20,000 over an 8 x 8 image: the direct path's padded plane would be 3.2e9 floats.
        // Every tap but the first of each row and column falls outside: y = x[0, 0] * w, then zeros.
        var g = new ConvGeometry(1, 1, 8, 8, 1, 1, 1, 20000, 0, 0, 2, 8);
        var xs = Enumerable.Range(1, 64).Select(i => (float)i).ToArray();
        var x = rig.Input(xs, 64);
        var w = rig.Input([0.5f], 1);
        var y = rig.Poisoned(16);
        rig.Backend.ConvForward(g, x, w, y);
        float[] expected = new float[16];
        expected[0] = 0.5f;
        Assert.Equal(expected, rig.Get(y));
    }
}
