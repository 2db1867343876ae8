using System.Globalization;

namespace LaPerm.Core.Training;

/// <summary>
/// Learning rate per epoch (epochs count from 0). Text forms:
/// "constant"; "exp:G" (lr * G^epoch); "step:F/E" (lr * F^(epoch / E), integer division);
/// "piecewise:E1=F1,E2=F2,..." (lr * Fi from epoch Ei on, e.g. Keras' CIFAR ResNet
/// "piecewise:80=0.1,120=0.01,160=0.001,180=0.0005").
/// </summary>
public sealed record LearningRateSchedule(string Kind, double Factor = 1, int Every = 1, IReadOnlyList<(int Epoch, double Factor)>? Pieces = null)
{
    public static LearningRateSchedule Constant { get; } = new("constant");

    public float At(float baseRate, int epoch) => Kind switch
    {
        "exp" => (float)(baseRate * Math.Pow(Factor, epoch)),
        "step" => (float)(baseRate * Math.Pow(Factor, epoch / Every)),
        "piecewise" => (float)(baseRate * Pieces!.Where(p => epoch >= p.Epoch).Select(p => p.Factor).DefaultIfEmpty(1).Last()),
        _ => baseRate,
    };

    public static LearningRateSchedule Parse(string text)
    {
        var inv = CultureInfo.InvariantCulture;
        string error = $"--lr-schedule expects constant, exp:G, step:F/E or piecewise:E=F,..., got '{text}'.";
        if (text == "constant") return Constant;
        int colon = text.IndexOf(':', StringComparison.Ordinal);
        if (colon < 0) throw new FormatException(error);
        string kind = text[..colon], rest = text[(colon + 1)..];
        // Well-formed but impossible values get a sentence of their own (the general one said only what the forms are).
        string Refused(string why) => $"--lr-schedule '{text}': {why}.";
        switch (kind)
        {
            case "exp" when double.TryParse(rest, NumberStyles.Float, inv, out double g):
                return g > 0 && double.IsFinite(g) ? new LearningRateSchedule("exp", g) : throw new FormatException(Refused($"the factor per epoch must be positive, got {rest}"));
            case "step":
                var parts = rest.Split('/');
                if (parts.Length == 2 && double.TryParse(parts[0], NumberStyles.Float, inv, out double f)
                    && int.TryParse(parts[1], NumberStyles.AllowLeadingSign, inv, out int every))
                {
                    if (!(f > 0 && double.IsFinite(f))) throw new FormatException(Refused($"the factor F of step:F/E must be positive, got {parts[0]}"));
                    if (every <= 0) throw new FormatException(Refused($"the epochs E of step:F/E must be at least 1, got {parts[1]}"));
                    return new LearningRateSchedule("step", f, every);
                }
                break;
            case "piecewise":
                var pieces = new List<(int, double)>();
                foreach (var piece in rest.Split(','))
                {
                    var kv = piece.Split('=');
                    if (kv.Length != 2 || !int.TryParse(kv[0], NumberStyles.None, inv, out int e)
                        || !double.TryParse(kv[1], NumberStyles.Float, inv, out double factor))
                        throw new FormatException(error);
                    if (!(factor > 0 && double.IsFinite(factor))) throw new FormatException(Refused($"the factor of epoch {e} must be positive, got {kv[1]}"));
                    if (pieces.Count > 0 && e <= pieces[^1].Item1)
                        throw new FormatException(Refused($"the epochs must increase, but {e} follows {pieces[^1].Item1}"));
                    pieces.Add((e, factor));
                }
                return new LearningRateSchedule("piecewise", Pieces: pieces);
        }
        throw new FormatException(error);
    }

    public override string ToString() => Kind switch
    {
        "exp" => FormattableString.Invariant($"exp:{Factor}"),
        "step" => FormattableString.Invariant($"step:{Factor}/{Every}"),
        "piecewise" => "piecewise:" + string.Join(",", Pieces!.Select(p => FormattableString.Invariant($"{p.Epoch}={p.Factor}"))),
        _ => "constant",
    };
}
