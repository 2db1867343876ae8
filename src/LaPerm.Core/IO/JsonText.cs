using System.Text.Json;
using System.Text.RegularExpressions;

namespace LaPerm.Core.IO;

/// <summary>
/// A JSON reader's error in a user's words: System.Text.Json ends its messages with a zero-based
/// "Path: $ | LineNumber: 0 | BytePositionInLine: 0." that reads as .NET's, not ours.
/// </summary>
public static partial class JsonText
{
    /// <summary>The error's own sentence, then where it is, one-based: "... (line 3, column 7)".</summary>
    public static string Describe(JsonException e)
    {
        ArgumentNullException.ThrowIfNull(e);
        return $"{Plain(e.Message)}{Where(e)}";
    }

    /// <summary>" (line N, column M)" (column left out on request), one-based; empty when the reader gave no position.</summary>
    public static string Where(JsonException e, bool column = true)
    {
        ArgumentNullException.ThrowIfNull(e);
        return e.LineNumber is long line ? $" (line {line + 1}{(column && e.BytePositionInLine is long at ? $", column {at + 1}" : "")})" : "";
    }

    /// <summary>The serialiser's message without its own zero-based position and path suffix.</summary>
    public static string Plain(string message)
    {
        ArgumentNullException.ThrowIfNull(message);
        string plain = PositionSuffix().Replace(message, "").Trim().TrimEnd('.');
        // An empty or blank file: the reader's sentence names its own parameter (isFinalBlock).
        if (plain.StartsWith("The input does not contain any JSON tokens", StringComparison.Ordinal)) return "it holds no JSON at all (empty or blank)";
        return ReaderState().Replace(plain, "");
    }

    [GeneratedRegex(@"\s*(Path:.*|LineNumber:.*)$", RegexOptions.Singleline)]
    private static partial Regex PositionSuffix();

    [GeneratedRegex(@",? when isFinalBlock is (true|false)")]
    private static partial Regex ReaderState();
}
