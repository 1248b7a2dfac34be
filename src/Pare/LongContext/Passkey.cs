using Pare.Tensors;

namespace Pare.LongContext;

/// <summary>
/// Passkey retrieval (Mohtashami and Jaggi 2023; the prompt of Quest's passkey.py): an instruction, filler text with
/// "The pass key is K. Remember it. K is the pass key." at the requested depth, then "What is the pass key? The pass key
/// is". K is uniform in [1, 50000] (one to three tokens with the 8k tokenizer). Scored by the first integer of the answer.
/// </summary>
public static class Passkey
{
    public const string Intro = "There is an important info hidden inside a lot of irrelevant text. Find it and memorize it. I will quiz you about the important information there.\n";
    public const string Question = "\nWhat is the pass key? The pass key is";

    public static string Needle(int key) => $"\nThe pass key is {key}. Remember it. {key} is the pass key.\n";

    /// <summary>A prompt of exactly <paramref name="length"/> tokens with the needle at <paramref name="depth"/> (0..1) of the filler.</summary>
    public static NeedleSample Build(SplitMix64 rng, TokenText text, Filler filler, int length, double depth)
    {
        int key = rng.NextInt(50000) + 1;
        int[] intro = text.Encode(Intro), needle = text.Encode(Needle(key)), question = text.Encode(Question);
        int fillerCount = length - intro.Length - needle.Length - question.Length;
        if (fillerCount < 1) throw new PareException($"passkey: a length of {length} tokens leaves no room for filler (needs more than {length - fillerCount})");
        var hay = filler.Take(rng, fillerCount);
        int at = filler.SentenceBoundary(hay, (int)Math.Round(Math.Clamp(depth, 0, 1) * fillerCount));
        int[] prompt = [.. intro, .. hay.AsSpan(0, at), .. needle, .. hay.AsSpan(at), .. question];
        return new NeedleSample(NeedleTask.Passkey, prompt, [key.ToString(System.Globalization.CultureInfo.InvariantCulture)],
            $" {key}.", [intro.Length + at], intro.Length, fillerCount + needle.Length);
    }
}
