using LaPerm.Core.Checkpoints;
using LaPerm.Core.IO;
using LaPerm.Core.Model;
using LaPerm.Plots;

namespace LaPerm.Cli;

internal static class ProfileWeightsCommand
{
    public const string Help = """
        laperm profile-weights --weights FILE [--model M] [--initial FILE] [--out PATH]

        The paper's weight-profile figure: for every kernel, each row sorted on its own and drawn
        as value against rank, all rows overlaid (at most 64 rows per panel); the initial weights
        left, the trained ones right. --initial defaults to initial.safetensors next to FILE (every
        run writes one) or in the run of a checkpoint's FILE. --model defaults to the model recorded
        in FILE. Writes PATH.png and PATH.svg (default: FILE without extension + .profile; for
        RUN/checkpoints/step-NNNNNNNN/weights.safetensors, RUN/step-NNNNNNNN.profile) and prints
        per layer: mean and std, the mean |difference| between sorted trained and sorted initial
        rows, and how many rows are exact permutations of their initial row.

        """;

    public static int Run(string[] args, TextWriter stdout)
    {
        var a = new Arguments(args, new HashSet<string> { "--weights", "--model", "--initial", "--out" }, new HashSet<string>(), "profile-weights");
        string weights = a.String("--weights") ?? throw new UsageException("'laperm profile-weights' needs --weights FILE.");
        Backends.RequireFile(weights, "weights file");
        var model = new ModelDefinition(Backends.ModelOfWeights(a, weights, LaPerm.Core.Training.Checkpoint.StoredMetadata(weights)));
        var checkpoint = CheckpointStore.Containing(weights);
        string? initial = a.String("--initial");
        if (initial is null)
        {
            // The run's initial weights: beside best/final, or in the run of a checkpoint's weights (RUN/checkpoints/step-N/).
            initial = new[]
                {
                    Path.Combine(Path.GetDirectoryName(weights) is { Length: > 0 } folder ? folder : ".", RunSession.InitialWeightsFile),
                    checkpoint is var (run, _) ? Path.Combine(run, RunSession.InitialWeightsFile) : null,
                }
                .OfType<string>()
                .FirstOrDefault(p => File.Exists(p) && !FilePaths.Same(p, weights));
        }
        else Backends.RequireFile(initial, "initial weights file");
        var (figure, summary) = WeightProfile.Build(model, weights, initial);
        // A checkpoint's figure goes beside the run's other figures: inside the checkpoint it would
        // vanish when the checkpoint is rotated out.
        string output = PlotCommand.FigurePath(a.String("--out"),
            checkpoint is var (runDirectory, name) ? Path.Combine(runDirectory, name + RunSession.ProfileFigureSuffix)
            : Path.Combine(Path.GetDirectoryName(weights) is { Length: > 0 } dir ? dir : ".", Path.GetFileNameWithoutExtension(weights) + RunSession.ProfileFigureSuffix));
        var (png, svg) = FigureRenderer.Save(figure, output);
        bool isInitial = Path.GetFileName(weights) == RunSession.InitialWeightsFile;
        stdout.WriteLine($"weight profile of {model.Name}: {weights}" + (initial is not null ? $" against {initial}"
            : isInitial ? " (the initial weights themselves; give trained weights to compare)" : " (no initial weights found; trained only)"));
        stdout.Write(WeightProfile.Describe(summary));
        stdout.WriteLine($"wrote {png} and {svg}");
        return 0;
    }
}
