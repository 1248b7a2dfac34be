using System.Text.RegularExpressions;

namespace Pare.LongContext;

/// <summary>
/// Exact-match scoring of a generated answer. Passkey (as in Quest's passkey.py): the first integer of the answer must equal
/// the key. Key-value tasks (as in Needle Threading's README): the prompt ends with an opening quote, so the answer is
/// read as quoted values, <c>4821", "7391"</c>; the i-th value must equal the i-th gold value exactly. The score of a
/// trial is the fraction of gold values matched (0 or 1 for one needle).
/// </summary>
public static partial class NeedleScoring
{
    [GeneratedRegex(@"\d+")]
    private static partial Regex Integer();

    [GeneratedRegex("\"([^\"\\n]*)\"")]
    private static partial Regex Quoted();

    /// <summary>The values an answer gives, in order.</summary>
    public static IReadOnlyList<string> Values(NeedleTask task, string answer) => task == NeedleTask.Passkey
        ? Integer().Match(answer) is { Success: true } m ? [m.Value] : []
        : [.. Quoted().Matches("\"" + answer).Select(x => x.Groups[1].Value)];

    /// <summary>Fraction of <paramref name="gold"/> values the answer gives at their place (0..1).</summary>
    public static double Score(NeedleTask task, string answer, IReadOnlyList<string> gold)
    {
        if (gold.Count == 0) throw new ArgumentException("no gold values", nameof(gold));
        var got = Values(task, answer);
        int hits = 0;
        for (int i = 0; i < gold.Count; i++) if (i < got.Count && got[i] == gold[i]) hits++;
        return (double)hits / gold.Count;
    }
}
