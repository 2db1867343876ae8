using System.Globalization;
using LaPerm.Core.Data;
using LaPerm.Core.Model;
using LaPerm.Core.Training;

namespace LaPerm.Cli;

internal static class EvalCommand
{
    public const string Help = """
        laperm eval --weights FILE [--model M] [--data D] [--batch B] [--limit-test N] [--threads N]
                    [--device cpu|cuda|cuda:N|emu|auto]

        Evaluates saved weights (best.safetensors / final.safetensors of a run) on the test split.
        The model, the data and the run's --limit-test default to those recorded in the file, so
        the accuracy is measured as the run measured it (the data to mnist for files written before
        it was recorded; --data alone evaluates the whole test split of that data). --batch defaults
        to 128 (it changes the speed, not the result).

        """;

    /// <summary>The run's --limit-test, where the file records one and the data is the recorded data too.</summary>
    private static int? RecordedLimit(IReadOnlyDictionary<string, string> metadata, string? recordedData, string weights)
    {
        if (recordedData is null || !metadata.TryGetValue(Checkpoint.LimitTestKey, out string? text)) return null;
        return int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out int limit) && limit > 0 ? limit
            : throw new UsageException($"weights file '{weights}' records limit_test '{text}', expected a positive whole number; pass --limit-test.");
    }

    public static int Run(string[] args, TextWriter stdout)
    {
        var a = new Arguments(args, new HashSet<string> { "--weights", "--model", "--data", "--batch", "--limit-test", "--threads", "--device" }, new HashSet<string>(), "eval");
        string weights = a.String("--weights") ?? throw new UsageException("'laperm eval' needs --weights FILE.");
        Backends.RequireFile(weights, "weights file");
        var metadata = Checkpoint.StoredMetadata(weights);
        var model = new ModelDefinition(Backends.ModelOfWeights(a, weights, metadata));
        // The data the weights were trained on: a Fashion-MNIST model evaluated on MNIST fits its shapes and means nothing.
        string? recorded = a.String("--data") is null ? metadata.GetValueOrDefault(Checkpoint.DataKey) : null;
        Dataset test;
        try
        {
            test = DataSource.LoadTest(a.String("--data") ?? recorded ?? "mnist", a.Int("--limit-test", 1) ?? RecordedLimit(metadata, recorded, weights));
        }
        catch (DataFormatException e) when (recorded is not null)
        {
            throw new UsageException($"the data set recorded in weights file '{weights}', '{recorded}', cannot be loaded here ({CommandLine.OneLine(e.Message).TrimEnd('.')}); pass --data.");
        }
        test.EnsureShape(model.Input.Channels, model.Input.Height, model.Input.Width, model.Name);
        test.EnsureClasses(model.Classes, model.Name);
        int batch = a.Int("--batch", 1) ?? 128;
        if (model.TooLargeBatch(Math.Min(batch, test.Count)) is { } tooLarge)
            throw new UsageException($"--batch {batch}: {tooLarge}; give a smaller --batch.");
        int threads = Backends.Threads(a);
        using var backend = Backends.Create(a.String("--device") ?? "cpu", threads, warnings: stdout);
        using var network = new Network(model, backend);
        Checkpoint.Load(network, weights);
        using var deviceTest = backend.UploadDataset(test);
        var (loss, accuracy) = Evaluation.Run(network, deviceTest, batch, test.Count);
        stdout.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"{model.Name} on {test.Name} ({test.Count:N0} images): accuracy {accuracy * 100:F2}% ({Math.Round(accuracy * test.Count):F0} correct), loss {NumberText.Loss(loss)}"));
        return 0;
    }
}
