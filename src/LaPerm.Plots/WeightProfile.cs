using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;
using LaPerm.Core.Backend;
using LaPerm.Core.Checkpoints;
using LaPerm.Core.IO;
using LaPerm.Core.Model;

namespace LaPerm.Plots;

/// <summary>One layer's numbers in the weight-profile summary.</summary>
/// <see cref="PermutedRows"/>: rows holding exactly their initial values in some order, the
/// identity included; <see cref="UnchangedRows"/>: those still in their initial order (after plain
/// Adam, e.g. a dead unit's row, whose gradient was always 0).
/// NaN and infinite values count in <see cref="TrainedNonFinite"/> / <see cref="InitialNonFinite"/>;
/// the figure cannot draw them, and the means and distance become NaN or infinite.
public sealed record LayerProfile(string Name, int Rows, int RowLength, double TrainedMean, double TrainedStd,
    double? InitialMean, double? InitialStd, double? MeanProfileDistance, int? PermutedRows,
    long TrainedNonFinite = 0, long? InitialNonFinite = null, int? UnchangedRows = null);

/// <summary>
/// The paper's weight-profile figure (Section 2): for every kernel, each row (one output
/// neuron or filter) sorted on its own and drawn as value against rank, all rows overlaid; the
/// initial weights on the left, the trained ones on the right. To keep files small at most
/// <see cref="MaxRowsDrawn"/> rows (evenly spaced) and <see cref="MaxPointsPerRow"/> ranks per row are drawn;
/// the numeric summary uses every value.
/// </summary>
public static class WeightProfile
{
    public const int MaxRowsDrawn = 64;
    public const int MaxPointsPerRow = 256;

    /// <summary>The kernels of <paramref name="model"/> as (name, rows, row length, values), checked against the file.</summary>
    public static IReadOnlyList<(ParameterInfo Info, float[] Values)> Kernels(ModelDefinition model, string path)
    {
        var tensors = SafeTensors.Read(path).Tensors.ToDictionary(t => t.Name);
        var result = new List<(ParameterInfo, float[])>();
        foreach (var p in model.Parameters.Where(p => p.Kind == ParameterKind.Kernel))
        {
            if (!tensors.TryGetValue(p.Name, out var t))
                throw new WeightsFormatException($"weights file '{path}' has no tensor '{p.Name}' that model '{model.Name}' needs");
            if (!t.Shape.SequenceEqual(p.Shape.Dims))
                throw new WeightsFormatException($"weights file '{path}': tensor '{p.Name}' has shape ({string.Join(", ", t.Shape)}), model '{model.Name}' expects {p.Shape}");
            result.Add((p, t.Values));
        }
        return result;
    }

    public static (Figure Figure, IReadOnlyList<LayerProfile> Summary) Build(ModelDefinition model, string trainedPath, string? initialPath)
    {
        var trained = Kernels(model, trainedPath);
        var initial = initialPath is null ? null : Kernels(model, initialPath);
        var panels = new List<Panel>();
        var summary = new List<LayerProfile>();
        for (int i = 0; i < trained.Count; i++)
        {
            var (info, values) = trained[i];
            var sortedTrained = SortRows(values, info.Rows, info.RowLength);
            float[]? sortedInitial = initial is null ? null : SortRows(initial[i].Values, info.Rows, info.RowLength);
            long trainedBad = NonFiniteGuard.CountNonFinite(values);
            long? initialBad = initial is null ? null : NonFiniteGuard.CountNonFinite(initial[i].Values);
            if (sortedInitial is not null)
                panels.Add(ProfilePanel($"{info.Name} initial", sortedInitial, info.Rows, info.RowLength, "#1f77b4", initialBad!.Value));
            panels.Add(ProfilePanel($"{info.Name} trained", sortedTrained, info.Rows, info.RowLength, "#d62728", trainedBad));
            var (tm, ts) = MeanStd(values);
            (double, double)? im = initial is null ? null : MeanStd(initial[i].Values);
            double? distance = null;
            int? permuted = null, unchanged = null;
            if (sortedInitial is not null)
            {
                unchanged = 0;
                for (int r = 0; r < info.Rows; r++)
                    if (MemoryMarshal.AsBytes(values.AsSpan(r * info.RowLength, info.RowLength)).SequenceEqual(
                            MemoryMarshal.AsBytes(initial![i].Values.AsSpan(r * info.RowLength, info.RowLength))))
                        unchanged++;
                double sum = 0;
                int same = 0;
                for (int r = 0; r < info.Rows; r++)
                {
                    var a = sortedTrained.AsSpan(r * info.RowLength, info.RowLength);
                    var b = sortedInitial.AsSpan(r * info.RowLength, info.RowLength);
                    bool equal = true;
                    for (int j = 0; j < a.Length; j++)
                    {
                        sum += Math.Abs((double)a[j] - b[j]);
                        if (BitConverter.SingleToInt32Bits(a[j]) != BitConverter.SingleToInt32Bits(b[j])) equal = false;
                    }
                    if (equal) same++;
                }
                distance = sum / values.Length;
                permuted = same;
            }
            summary.Add(new LayerProfile(info.Name, info.Rows, info.RowLength, tm, ts, im?.Item1, im?.Item2, distance, permuted, trainedBad, initialBad, unchanged));
        }
        return (new Figure(panels, Columns: initial is null ? 1 : 2, PanelWidth: 480, PanelHeight: 340), summary);
    }

    /// <summary>Every row sorted ascending under the reconnection's total order.</summary>
    public static float[] SortRows(float[] values, int rows, int rowLength)
    {
        var sorted = (float[])values.Clone();
        for (int r = 0; r < rows; r++)
            sorted.AsSpan(r * rowLength, rowLength).Sort((x, y) => Reconnection.OrderKey(x).CompareTo(Reconnection.OrderKey(y)));
        return sorted;
    }

    private static Panel ProfilePanel(string title, float[] sorted, int rows, int rowLength, string color, long nonFinite)
    {
        int drawn = Math.Min(rows, MaxRowsDrawn);
        int points = Math.Min(rowLength, MaxPointsPerRow);
        var lines = new List<Series>();
        for (int k = 0; k < drawn; k++)
        {
            int r = drawn == rows ? k : (int)((long)k * rows / drawn);
            var x = new double[points];
            var y = new double[points];
            for (int j = 0; j < points; j++)
            {
                int rank = points == rowLength ? j : (int)Math.Round((double)j * (rowLength - 1) / (points - 1));
                x[j] = rank;
                y[j] = sorted[r * rowLength + rank];
            }
            lines.Add(new Series($"row {r}", x, y));
        }
        string note = (drawn < rows ? $" ({drawn} of {rows} rows" : $" ({rows} rows") + (nonFinite > 0 ? $"; {nonFinite} NaN/inf not drawn)" : ")");
        return new Panel(title + note, "rank in row", "weight value", lines, [], Legend: false) { SingleColor = color };
    }

    private static (double Mean, double Std) MeanStd(float[] values)
    {
        double mean = values.Average(v => (double)v);
        double variance = values.Average(v => ((double)v - mean) * ((double)v - mean));
        return (mean, Math.Sqrt(variance));
    }

    public static string Describe(IReadOnlyList<LayerProfile> summary)
    {
        var sb = new StringBuilder();
        var inv = CultureInfo.InvariantCulture;
        sb.AppendLine(string.Create(inv, $"{"layer",-18} {"rows",6} {"row len",8} {"trained mean",13} {"std",10} {"initial mean",13} {"std",10} {"|profile diff|",15} {"permuted rows",14} {"unchanged",10}"));
        foreach (var l in summary)
        {
            sb.AppendLine(string.Create(inv,
                $"{l.Name,-18} {l.Rows,6} {l.RowLength,8} {l.TrainedMean,13:0.000E+00} {l.TrainedStd,10:0.000E+00} {Opt(l.InitialMean, "0.000E+00"),13} {Opt(l.InitialStd, "0.000E+00"),10} {Opt(l.MeanProfileDistance, "0.000E+00"),15} {(l.PermutedRows is { } p ? $"{p}/{l.Rows}" : "-"),14} {(l.UnchangedRows is { } u ? $"{u}" : "-"),10}"));
        }
        // Said in words: a NaN in the table is easy to miss, and the figure leaves such values out.
        foreach (var l in summary)
        {
            if (l.TrainedNonFinite > 0) sb.AppendLine(string.Create(inv, $"{l.Name}: {l.TrainedNonFinite} of {(long)l.Rows * l.RowLength} trained values are NaN or infinite (not drawn)"));
            if (l.InitialNonFinite > 0) sb.AppendLine(string.Create(inv, $"{l.Name}: {l.InitialNonFinite} of {(long)l.Rows * l.RowLength} initial values are NaN or infinite (not drawn)"));
        }
        return sb.ToString();

        string Opt(double? v, string format) => v is { } d ? d.ToString(format, inv) : "-";
    }
}
