namespace Pare.Generation;

/// <summary>Holds back text that could be the start of a stop sequence until it is decided.</summary>
internal sealed class StopMatcher(IReadOnlyList<string> stops)
{
    string _pending = "";
    public bool Stopped { get; private set; }

    public (string Emit, bool Stop) Push(string text)
    {
        if (Stopped) return ("", true);
        if (stops.Count == 0) return (text, false);
        _pending += text;
        int cut = -1;
        foreach (var s in stops)
        {
            if (s.Length == 0) continue;
            int at = _pending.IndexOf(s, StringComparison.Ordinal);
            if (at >= 0 && (cut < 0 || at < cut)) cut = at;
        }
        if (cut >= 0)
        {
            Stopped = true;
            var before = _pending[..cut];
            _pending = "";
            return (before, true);
        }
        int hold = 0;
        foreach (var s in stops)
            for (int k = Math.Min(s.Length - 1, _pending.Length); k > hold; k--)
                if (_pending.EndsWith(s[..k], StringComparison.Ordinal)) { hold = k; break; }
        var emit = _pending[..^hold];
        _pending = _pending[^hold..];
        return (emit, false);
    }

    public string Flush()
    {
        var p = _pending;
        _pending = "";
        return p;
    }
}
