using LaPerm.Plots;

namespace LaPerm.Cli;

internal static class TraceCommand
{
    public const string Help = """
        laperm trace DIR --layer NAME [--out PATH]

        Plots the reconnection traffic of one tensor (e.g. dense1/kernel) over the run: at each
        sync, the share of its positions whose value changed since the previous sync and since
        initialisation (recorded by --trace-reconnection, on by default on cpu). Writes PATH.png
        and PATH.svg (default DIR/trace-NAME, a / in NAME written as -, a NAME over 100 characters
        cut to 80 and a hash). Without --layer, lists the traced tensors.

        """;

    public static int Run(string[] args, TextWriter stdout)
    {
        var flags = new HashSet<string> { "--layer", "--out" };
        var (dir, rest) = PlotCommand.RunDirectory(args, "trace", flags);
        var a = new Arguments(rest, flags, new HashSet<string>(), "trace");
        var metrics = PlotCommand.LoadMetrics(dir, stdout);
        if (a.String("--layer") is not { } layer)
        {
            // As the help says: without --layer, the list of what can be traced (an answer, not an error).
            var layers = RunFigures.TracedLayers(metrics);
            if (layers.Count == 0)
                throw new UsageException(metrics.Events("sync").Any()
                    ? $"'{metrics.Path}' has no reconnection traffic (train with --trace-reconnection on)."
                    : $"'{metrics.Path}' has no syncs (a run with --no-reconnect, or shorter than its first sync): nothing to trace.");
            stdout.WriteLine($"traced tensors (laperm trace {dir} --layer NAME):");
            foreach (var name in layers) stdout.WriteLine($"  {name}");
            return 0;
        }
        var figure = RunFigures.Trace(metrics, layer);
        var (png, svg) = FigureRenderer.Save(figure, PlotCommand.FigurePath(a.String("--out"), Path.Combine(dir, LaPerm.Core.Checkpoints.RunSession.TraceFigurePrefix + RunFigures.FileSafe(layer))));
        stdout.WriteLine($"wrote {png} and {svg}");
        return 0;
    }
}
