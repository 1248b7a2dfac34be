#:property PublishAot=false
// Builds the speculative-decoding prompt set from the corpus test split (never the training split).
//   dotnet run benchmarks/spec/MakePrompts.cs -- .cache/data/corpus/test.txt > benchmarks/spec/prompts.jsonl
// Categories (12 prompts each, fixed seed):
//   prose   - the opening of a test paragraph: plain continuation, little to copy.
//   quote   - a test paragraph followed by the start of a passage that quotes it again: continuation repeats text.
//   lists   - numbered lists and tables of names and numbers taken from the test text: repetitive structure.
using System.Text.Json;
using System.Text.RegularExpressions;

var text = File.ReadAllText(args.Length > 0 ? args[0] : ".cache/data/corpus/test.txt");
var paragraphs = text.Split("\n\n", StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
    .Select(p => Regex.Replace(p, @"\s+", " ")).Where(p => p.Length is > 400 and < 4000).ToList();
var rng = new Random(2026);
var pick = () => paragraphs[rng.Next(paragraphs.Count)];
const int perCategory = 12;
var lines = new List<string>();
void Emit(string category, string prompt) => lines.Add(JsonSerializer.Serialize(new { category, prompt }));

for (int i = 0; i < perCategory; i++) Emit("prose", Words(pick(), 120));
for (int i = 0; i < perCategory; i++)
{
    var p = Words(pick(), 150);
    Emit("quote", $"{p}\n\nAs was said before: \"{Words(p, 12)}");
}
var names = Regex.Matches(text, @"\b[A-Z][a-z]{3,}\b").Select(m => m.Value).Distinct().ToList();
var numbers = Regex.Matches(text, @"\b\d{2,}(,\d{3})*(\.\d+)?\b").Select(m => m.Value).Distinct().ToList();
for (int i = 0; i < perCategory; i++)
{
    var rows = new List<string>();
    if (i % 2 == 0)
    {
        for (int r = 1; r <= 8; r++) rows.Add($"{r}. {names[rng.Next(names.Count)]}: {numbers[rng.Next(numbers.Count)]}");
        Emit("lists", "The figures, in order:\n" + string.Join("\n", rows) + "\n9.");
    }
    else
    {
        rows.Add("| name | year | amount |");
        rows.Add("|---|---|---|");
        for (int r = 0; r < 6; r++) rows.Add($"| {names[rng.Next(names.Count)]} | {1790 + rng.Next(230)} | {numbers[rng.Next(numbers.Count)]} |");
        Emit("lists", string.Join("\n", rows) + "\n|");
    }
}
foreach (var l in lines) Console.WriteLine(l);

static string Words(string s, int n) => string.Join(' ', s.Split(' ').Take(n));
