namespace LaPerm.Core.Data;

/// <summary>
/// A user error in the data: a missing, malformed, truncated or inconsistent data file, or
/// images of the wrong size for the model. The message is one sentence naming the file (or
/// data set) and what was expected; the CLI prints it without a stack trace and exits non-zero.
/// </summary>
public sealed class DataFormatException : Exception
{
    public DataFormatException(string message) : base(message)
    {
    }

    public DataFormatException(string message, Exception innerException) : base(message, innerException)
    {
    }
}
