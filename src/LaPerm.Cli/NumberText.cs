using System.Globalization;

namespace LaPerm.Cli;

/// <summary>How the progress lines write numbers whose range is wide: a loss and a learning rate.</summary>
internal static class NumberText
{
    /// <summary>
    /// Four decimals, or four significant digits with an exponent from 100,000 up (a diverging
    /// run's loss of 8.5E+20 was 22 digits wide). NaN and infinities as .NET writes them.
    /// </summary>
    public static string Loss(double loss) =>
        Math.Abs(loss) >= 1e5 && double.IsFinite(loss)
            ? loss.ToString("0.000E+00", CultureInfo.InvariantCulture)
            : loss.ToString("F4", CultureInfo.InvariantCulture);

    /// <summary>
    /// A learning rate: three significant digits (a scheduled one in single precision, 1.0000001E-05,
    /// reads 1e-05), or as given (<paramref name="exact"/>, the header's); an exponent from below
    /// 0.0001 on, in lower case as in the flags' own spelling.
    /// </summary>
    public static string Rate(float rate, bool exact = false) =>
        (exact ? rate.ToString(CultureInfo.InvariantCulture) : rate.ToString("G3", CultureInfo.InvariantCulture)).Replace('E', 'e');
}
