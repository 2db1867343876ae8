using LaPerm.Core.IO;
using System.Globalization;

namespace LaPerm.Cli;

/// <summary>A mistake in how laperm was called; printed as one sentence, exit code 2.</summary>
public sealed class UsageException(string message) : Exception(message);

/// <summary>
/// "--name value" and "--switch" arguments of one sub-command, checked against the flags it knows.
/// Values are read in command-line order; a repeated flag keeps the last value.
/// </summary>
internal sealed class Arguments
{
    private readonly List<(string Name, string? Value)> _items = [];
    private readonly HashSet<string> _used = [];

    public Arguments(IEnumerable<string> args, IReadOnlySet<string> valueFlags, IReadOnlySet<string> switches, string command)
    {
        var list = args.ToList();
        for (int i = 0; i < list.Count; i++)
        {
            string a = list[i];
            string name = a, inline = "";
            bool hasInline = false;
            int eq = a.IndexOf('=', StringComparison.Ordinal);
            if (a.StartsWith("--", StringComparison.Ordinal) && eq > 0)
            {
                name = a[..eq];
                inline = a[(eq + 1)..];
                hasInline = true;
            }
            if (valueFlags.Contains(name))
            {
                if (hasInline) _items.Add((name, inline));
                // A flag next ("--lr --epochs 1") means the value was forgotten: no value starts with "--".
                else if (i + 1 < list.Count && !list[i + 1].StartsWith("--", StringComparison.Ordinal)) _items.Add((name, list[++i]));
                else if (i + 1 < list.Count) throw new UsageException($"{name} needs a value, not the option '{list[i + 1]}' (a value that starts with -- is given as {name}=VALUE).");
                else throw new UsageException($"{name} needs a value (see 'laperm {command} --help').");
                // No flag takes an empty value: --out "" wrote .png and .svg into the working directory, --json "" nothing at all.
                if (string.IsNullOrWhiteSpace(_items[^1].Value))
                    throw new UsageException($"{name} needs a value, got an empty one (see 'laperm {command} --help').");
            }
            else if (switches.Contains(name) && !hasInline)
            {
                _items.Add((name, null));
            }
            else if (switches.Contains(name))
            {
                throw new UsageException($"{name} is a switch and takes no value; give {name} alone, without '={inline}'.");
            }
            else
            {
                throw new UsageException(a.StartsWith('-')
                    ? $"'{a}' is not an option of 'laperm {command}'{NameSuggestion.DidYouMean(name, valueFlags.Concat(switches))} (see 'laperm {command} --help')."
                    : $"unexpected argument '{a}' for 'laperm {command}' (options start with --).");
            }
        }
    }

    public bool Has(string name) => _items.Any(i => i.Name == name);

    public string? String(string name)
    {
        string? value = null;
        foreach (var (n, v) in _items)
            if (n == name) value = v;
        return value;
    }

    public int? Int(string name, int min = int.MinValue, int max = int.MaxValue)
    {
        var s = String(name);
        if (s is null) return null;
        if (!int.TryParse(s, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out int v) || v < min || v > max)
        {
            // An integer beyond int's range (99999999999) is told the upper end it passed, int's own included.
            bool beyondInt = !int.TryParse(s, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out _)
                             && System.Numerics.BigInteger.TryParse(s, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out _);
            string range = (min > int.MinValue, max < int.MaxValue || beyondInt) switch
            {
                (true, true) => $" from {min} to {max}",
                (true, false) => $" of at least {min}",
                (false, true) => $" of at most {max}",
                _ => "",
            };
            throw new UsageException($"{name} expects an integer{range}, got '{s}'.");
        }
        return v;
    }

    public ulong? ULong(string name)
    {
        var s = String(name);
        if (s is null) return null;
        if (!ulong.TryParse(s, NumberStyles.None, CultureInfo.InvariantCulture, out ulong v))
            throw new UsageException($"{name} expects a non-negative integer, got '{s}'.");
        return v;
    }

    public double? Double(string name, double min, double max)
    {
        var s = String(name);
        if (s is null) return null;
        if (!double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out double v) || !(v >= min && v <= max))
            throw new UsageException($"{name} expects a number in [{min.ToString(CultureInfo.InvariantCulture)}, {max.ToString(CultureInfo.InvariantCulture)}], got '{s}'.");
        return v;
    }

    /// <summary>"4/7" or "0.25" -> probability.</summary>
    public static double Fraction(string text, string flag)
    {
        var inv = CultureInfo.InvariantCulture;
        int slash = text.IndexOf('/', StringComparison.Ordinal);
        double value = double.NaN;
        if (slash > 0 && double.TryParse(text[..slash], NumberStyles.Float, inv, out double a) && double.TryParse(text[(slash + 1)..], NumberStyles.Float, inv, out double b) && b != 0)
            value = a / b;
        else if (slash < 0 && double.TryParse(text, NumberStyles.Float, inv, out double v))
            value = v;
        if (!(value >= 0 && value <= 1)) throw new UsageException($"{flag} expects probabilities like 4/7 or 0.25 between 0 and 1, got '{text}'.");
        return value;
    }
}
