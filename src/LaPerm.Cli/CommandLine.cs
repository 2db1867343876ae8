using LaPerm.Core.Checkpoints;
using LaPerm.Core.Data;
using LaPerm.Core.IO;
using LaPerm.Core.LaPerm;
using LaPerm.Core.Model;

namespace LaPerm.Cli;

/// <summary>
/// `laperm`: train, eval, models, info, bench, plot, profile-weights, trace. User errors (bad flags, bad data or model files)
/// print one sentence and exit with 2; a broken LaPerm invariant exits with 3, a GPU failure with 6.
/// </summary>
public static class CommandLine
{
    public const int UserError = 2;
    public const int InvariantBroken = 3;

    /// <summary>The loss, a gradient or a weight became NaN/Inf (with --on-nan stop).</summary>
    public const int NonFinite = 4;

    /// <summary>The output directory cannot be written (before training, or at a checkpoint).</summary>
    public const int StorageFailed = 5;

    /// <summary>
    /// A GPU call failed (a kernel fault, a driver or library error): the message names the call and
    /// the kernels with their launch configurations; checkpoints already written are intact.
    /// </summary>
    public const int DeviceFailed = 6;

    /// <summary>Interrupted (Ctrl-C, SIGTERM) after a step and its checkpoint: 128 + SIGINT, as shells report it.</summary>
    public const int Interrupted = 130;

    public static int Run(string[] args) => Run(args, Console.Out, Console.Error);

    public static int Run(string[] args, TextWriter stdout, TextWriter stderr)
    {
        ArgumentNullException.ThrowIfNull(args);
        try
        {
            // "laperm help train" is "laperm train --help", as git and dotnet read it.
            if (args is ["help", var topic, .. var more]) args = [topic, .. more, "--help"];
            if (args.Length == 0 || args[0] is "--help" or "-h" or "help")
            {
                stdout.Write(Usage);
                return 0;
            }
            if (args is ["--version"])
            {
                stdout.WriteLine($"laperm {LaPerm.Core.IO.BuildInfo.Version}");
                return 0;
            }
            var rest = args[1..];
            bool help = rest.Contains("--help") || rest.Contains("-h");
            return args[0] switch
            {
                "train" => help ? PrintHelp(stdout, TrainCommand.Help) : TrainCommand.Run(rest, stdout, ReferenceEquals(stdout, Console.Out) && !Console.IsOutputRedirected),
                "eval" => help ? PrintHelp(stdout, EvalCommand.Help) : EvalCommand.Run(rest, stdout),
                "models" => help ? PrintHelp(stdout, ModelsCommand.Help) : ModelsCommand.Run(rest, stdout),
                "info" => help ? PrintHelp(stdout, InfoCommand.Help) : InfoCommand.Run(rest, stdout),
                "bench" => help ? PrintHelp(stdout, BenchCommand.HelpFor(rest)) : BenchCommand.Run(rest, stdout),
                "plot" => help ? PrintHelp(stdout, PlotCommand.Help) : PlotCommand.Run(rest, stdout),
                "profile-weights" => help ? PrintHelp(stdout, ProfileWeightsCommand.Help) : ProfileWeightsCommand.Run(rest, stdout),
                "trace" => help ? PrintHelp(stdout, TraceCommand.Help) : TraceCommand.Run(rest, stdout),
                _ => throw new UsageException($"unknown command '{args[0]}'{LaPerm.Core.IO.NameSuggestion.DidYouMean(args[0], Commands)}; expected {string.Join(", ", Commands[..^1])} or {Commands[^1]}."),
            };
        }
        catch (Exception e) when (e is UsageException or DataFormatException or ModelSpecException or WeightsFormatException or FormatException
                                   or ResumeException or LaPerm.Plots.MetricsFormatException or LaPerm.Cuda.Runtime.DeviceMemoryException)
        {
            stderr.WriteLine($"laperm: {Sentence(e.Message)}");
            return UserError;
        }
        catch (InvariantViolationException e)
        {
            stderr.WriteLine($"laperm: STOPPED: {Sentence(e.Message)}");
            return InvariantBroken;
        }
        catch (NonFiniteException e)
        {
            stderr.WriteLine($"laperm: STOPPED: {Sentence(e.Message)}");
            return NonFinite;
        }
        catch (RunStorageException e)
        {
            stderr.WriteLine($"laperm: {Sentence(e.Message)}");
            return StorageFailed;
        }
        catch (Exception e) when (e is LaPerm.Cuda.Interop.CudaException or DeviceFailedException)
        {
            // Not the user's doing and not recoverable in this process (a fault is sticky): one
            // sentence that names what failed (and, from train, what is safe on disk).
            stderr.WriteLine($"laperm: STOPPED: GPU error: {Sentence(e.Message)}");
            return DeviceFailed;
        }
        catch (IOException e)
        {
            // E.g. metrics.jsonl on a disk that filled up; checkpoints report their own failures above.
            stderr.WriteLine($"laperm: I/O error: {Sentence(e.Message)}");
            return StorageFailed;
        }
        catch (UnauthorizedAccessException e)
        {
            // A file or directory this user may not write (or read): the environment's doing, not a bug.
            stderr.WriteLine($"laperm: permission denied: {Sentence(e.Message)}");
            return StorageFailed;
        }
    }

    private static int PrintHelp(TextWriter stdout, string text)
    {
        stdout.Write(text);
        return 0;
    }

    /// <summary>
    /// A message as one line of a one-sentence report, other control characters written as
    /// \uXXXX: a name read from a file may hold an escape sequence or a NUL, which the terminal
    /// must not act on.
    /// </summary>
    internal static string OneLine(string message)
    {
        string line = message.ReplaceLineEndings(" ").Trim();
        if (!line.Any(char.IsControl)) return line;
        var text = new System.Text.StringBuilder(line.Length + 16);
        foreach (char c in line)
            if (char.IsControl(c)) text.Append(System.Globalization.CultureInfo.InvariantCulture, $"\\u{(int)c:x4}");
            else text.Append(c);
        return text.ToString();
    }

    /// <summary>An error as the one sentence stderr shows: on one line, ending in a full stop (some messages carry their own).</summary>
    internal static string Sentence(string message)
    {
        string line = OneLine(message);
        return line.EndsWith('.') || line.EndsWith('?') || line.EndsWith('!') ? line : line + ".";
    }

    private static readonly string[] Commands = ["train", "eval", "models", "info", "bench", "plot", "profile-weights", "trace"];

    private const string Usage = """
        laperm: train neural networks by reconnecting their initial weights (LaPerm).

        Commands:
          laperm train [options]      train a model (default: lenet300 on the embedded MNIST, 2 epochs)
          laperm eval --weights FILE  evaluate saved weights on a test set
          laperm models [FILE.json | NAME]   list the built-in models (or describe one, or a model file)
          laperm info                 show the devices this build can use
          laperm bench train|sync|reconnect   training throughput, one sync, the reconnection kernels
          laperm plot DIR             accuracy and loss of a run against steps (PNG + SVG)
          laperm profile-weights --weights FILE   the paper's weight-profile figure, initial vs trained
          laperm trace DIR --layer NAME           reconnection traffic of one tensor over a run

        'laperm COMMAND --help' lists a command's options; 'laperm --version' names the build
        (version+commit).

        Exit codes: 0 done; 2 a user error (flags, data or model files, out of device memory);
        3 a broken LaPerm invariant (--verify-invariants; a mismatch in bench reconnect);
        4 a NaN/Inf (--on-nan stop); 5 the output directory cannot be written; 6 a GPU error
        (a kernel fault, a driver or library failure); 130 interrupted (Ctrl-C or SIGTERM) after
        a step and its checkpoint.

        """;
}

/// <summary>A GPU error during training, with what the run left on disk (its newest intact checkpoint, if any).</summary>
internal sealed class DeviceFailedException(LaPerm.Cuda.Interop.CudaException inner, string onDisk)
    : Exception($"{inner.Message.TrimEnd('.')}; {onDisk}", inner);
