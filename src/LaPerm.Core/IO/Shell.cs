using System.Text.RegularExpressions;

namespace LaPerm.Core.IO;

/// <summary>Text for the commands laperm prints for a user to paste (resume a run, ...).</summary>
public static partial class Shell
{
    /// <summary>
    /// <paramref name="word"/> as one word of a POSIX shell: unchanged when it holds only
    /// characters no shell treats specially, else in single quotes (a ' inside as '\'').
    /// </summary>
    public static string Quote(string word)
    {
        ArgumentNullException.ThrowIfNull(word);
        return Plain().IsMatch(word) ? word : "'" + word.Replace("'", "'\\''", StringComparison.Ordinal) + "'";
    }

    [GeneratedRegex(@"^[A-Za-z0-9_./:=+@%,-]+$")]
    private static partial Regex Plain();
}
