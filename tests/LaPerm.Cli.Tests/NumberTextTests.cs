namespace LaPerm.Cli.Tests;

public sealed class NumberTextTests
{
    [Theory]
    [InlineData(0.123456, "0.1235")]
    [InlineData(2.3, "2.3000")]
    [InlineData(99999.0, "99999.0000")]
    [InlineData(100000.0, "1.000E+05")]
    [InlineData(850785870540661456896.0, "8.508E+20")]
    [InlineData(-3.2e7, "-3.200E+07")]
    [InlineData(double.NaN, "NaN")]
    [InlineData(double.PositiveInfinity, "Infinity")]
    public void ALossKeepsFourDecimalsUntilItNeedsAnExponent(double loss, string expected) =>
        Assert.Equal(expected, NumberText.Loss(loss));

    [Theory]
    [InlineData(0.001f, false, "0.001")]
    [InlineData(0.0005f, false, "0.0005")]
    [InlineData(0.0001f, false, "0.0001")]
    [InlineData(1.0000001e-5f, false, "1e-05")]   // 0.001 x 0.01 in single precision
    [InlineData(0.00123456f, false, "0.00123")]
    [InlineData(0.00123456f, true, "0.00123456")]
    [InlineData(1e-5f, true, "1e-05")]
    [InlineData(10f, false, "10")]
    public void ALearningRateReadsAlikeAcrossItsRange(float rate, bool exact, string expected) =>
        Assert.Equal(expected, NumberText.Rate(rate, exact));
}
