using LaPerm.Plots;

namespace LaPerm.Cli;

internal static class PlotCommand
{
    public const string Help = """
        laperm plot DIR [--out PATH]

        Draws train/test accuracy and loss against steps from DIR/metrics.jsonl, LaPerm syncs
        dashed, as PATH.png and PATH.svg (default DIR/training).

        """;

    public static int Run(string[] args, TextWriter stdout)
    {
        var flags = new HashSet<string> { "--out" };
        var (dir, rest) = RunDirectory(args, "plot", flags);
        var a = new Arguments(rest, flags, new HashSet<string>(), "plot");
        var metrics = LoadMetrics(dir, stdout);
        var figure = RunFigures.Training(metrics);
        var (png, svg) = FigureRenderer.Save(figure, FigurePath(a.String("--out"), Path.Combine(dir, LaPerm.Core.Checkpoints.RunSession.TrainingFigure)));
        stdout.WriteLine($"wrote {png} and {svg}");
        return 0;
    }

    /// <summary>DIR/metrics.jsonl, saying so when its torn last line (a run killed while writing it) is left out.</summary>
    public static RunMetrics LoadMetrics(string dir, TextWriter stdout)
    {
        var metrics = RunMetrics.Load(dir);
        if (metrics.TornLastLine) stdout.WriteLine($"laperm: note: the last line of '{metrics.Path}' is cut short (the run stopped while writing it); it is left out.");
        return metrics;
    }

    /// <summary>
    /// Where a figure goes (PATH.png and PATH.svg): --out, or <paramref name="defaultPath"/>; an --out
    /// that is a directory (or ends in a separator) gets the default's file name inside it.
    /// </summary>
    public static string FigurePath(string? given, string defaultPath) =>
        given is null ? defaultPath
        : Path.EndsInDirectorySeparator(given) || Directory.Exists(given) ? Path.Combine(given, Path.GetFileName(defaultPath))
        // Both files are written (.png and .svg): a name given with either extension is their common stem.
        : Path.GetExtension(given).ToLowerInvariant() is ".png" or ".svg" ? Path.ChangeExtension(given, null)
        : given;

    /// <summary>
    /// The DIR argument of plot and trace, anywhere among the options (as train takes its flags in
    /// any order): the first word that is neither an option nor the value of one of <paramref name="valueFlags"/>.
    /// </summary>
    public static (string Dir, string[] Others) RunDirectory(string[] args, string command, IReadOnlySet<string> valueFlags)
    {
        int at = -1;
        for (int i = 0; i < args.Length && at < 0; i++)
        {
            if (!args[i].StartsWith("--", StringComparison.Ordinal)) at = i;
            else if (valueFlags.Contains(args[i])) i++;   // its value is not the directory
        }
        if (at < 0)
            throw new UsageException($"'laperm {command}' expects a run directory (see 'laperm {command} --help').");
        string dir = args[at];
        if (!Directory.Exists(dir))
            throw new UsageException(File.Exists(dir)
                ? $"'{dir}' is a file; laperm {command} expects the run directory that holds metrics.jsonl."
                : $"run directory '{dir}' does not exist.");
        return (dir, [.. args[..at], .. args[(at + 1)..]]);
    }
}
