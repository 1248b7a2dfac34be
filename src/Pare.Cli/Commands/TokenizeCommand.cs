using System.CommandLine;

namespace Pare.Cli.Commands;

/// <summary><c>pare tokenize MODEL --text-file F</c>: token ids of a text, with the model's own tokenizer.</summary>
internal static class TokenizeCommand
{
    public static Command Create()
    {
        var model = Cli.ModelArgument();
        var file = new Option<FileInfo?>("--text-file", "-f") { Description = "File whose UTF-8 text to tokenize." };
        var text = new Option<string?>("--text") { Description = "Text to tokenize (instead of --text-file)." };
        var noSpecial = new Option<bool>("--no-bos") { Description = "Do not add BOS even if the model asks for it." };
        var json = Cli.Json();
        var cmd = new Command("tokenize", "Print the token ids of a text.") { model, file, text, noSpecial, json };
        cmd.SetAction(r => Cli.Guard(() =>
        {
            var f = r.GetValue(file);
            string input = f != null
                ? (f.Exists ? File.ReadAllText(f.FullName) : throw new PareException($"text file not found: {f.FullName}"))
                : r.GetValue(text) ?? throw new PareException("give --text-file F or --text T");
            using var m = Cli.Load(r.GetValue(model)!);
            var tok = m.Tokenizer ?? throw new PareException($"{m.Source}: the model has no tokenizer");
            var ids = tok.Encode(input, addSpecial: !r.GetValue(noSpecial));
            if (r.GetValue(json)) Cli.PrintJson(new { ids });
            else
            {
                Console.Out.WriteLine(string.Join(' ', ids));
                Console.Error.WriteLine($"[{ids.Length} tokens]");
            }
            return 0;
        }));
        return cmd;
    }
}
