namespace Pare;

/// <summary>
/// An error caused by the user's input (a model file, an option, a token id) rather than by a bug.
/// The message is one line and says what is wrong and where; the CLI prints it and exits non-zero.
/// </summary>
public class PareException : Exception
{
    public PareException(string message) : base(OneLine(message)) { }
    public PareException(string message, Exception inner) : base(OneLine(message), inner) { }
    public PareException() { }

    /// <summary>Messages quote names read from hostile files: keep them one printable line of bounded length.</summary>
    static string OneLine(string message)
    {
        var sb = new System.Text.StringBuilder(Math.Min(message.Length, 400));
        foreach (char c in message)
        {
            if (sb.Length >= 400) { sb.Append('…'); break; }
            sb.Append(char.IsControl(c) ? '?' : c);
        }
        return sb.ToString();
    }
}

/// <summary>A model file that is malformed, truncated, hostile or unsupported.</summary>
public sealed class InvalidModelException : PareException
{
    public InvalidModelException(string message) : base(message) { }
    public InvalidModelException(string message, Exception inner) : base(message, inner) { }
    public InvalidModelException() { }
}
