namespace Pare.Rag;

/// <summary>The reader's prompt: the kept context, passage by passage, then the question.</summary>
public static class ReaderPrompt
{
    public static string Build(string question, IReadOnlyList<string> passages) =>
        "Use the context to answer the question.\n\n" + string.Concat(passages.Select((p, i) => $"[{i + 1}] {p}\n")) + $"\nQuestion: {question}\nAnswer:";
}
