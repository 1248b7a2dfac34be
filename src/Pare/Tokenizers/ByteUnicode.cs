namespace Pare.Tokenizers;

/// <summary>
/// GPT-2's reversible byte to unicode map: printable Latin-1 bytes map to themselves, the other 68 bytes
/// to U+0100.. in byte order, so every byte string becomes a printable string that BPE can work on.
/// </summary>
public static class ByteUnicode
{
    static readonly char[] s_byteToChar = Build();
    static readonly Dictionary<char, byte> s_charToByte = Enumerable.Range(0, 256).ToDictionary(b => s_byteToChar[b], b => (byte)b);

    static char[] Build()
    {
        var map = new char[256];
        int n = 0;
        for (int b = 0; b < 256; b++)
        {
            bool printable = b is >= '!' and <= '~' or >= 0xA1 and <= 0xAC or >= 0xAE and <= 0xFF;
            map[b] = printable ? (char)b : (char)(256 + n++);
        }
        return map;
    }

    public static char ToChar(byte b) => s_byteToChar[b];

    public static bool TryToByte(char c, out byte b) => s_charToByte.TryGetValue(c, out b);

    /// <summary>The mapped form of UTF-8 bytes: one char per byte.</summary>
    public static string Encode(ReadOnlySpan<byte> bytes)
    {
        return string.Create(bytes.Length, bytes.ToArray(), static (dst, src) =>
        {
            for (int i = 0; i < src.Length; i++) dst[i] = s_byteToChar[src[i]];
        });
    }

    /// <summary>Bytes of a mapped token. Chars outside the map (vocabularies converted from elsewhere) are kept as their UTF-8.</summary>
    public static byte[] Decode(string mapped)
    {
        var bytes = new List<byte>(mapped.Length);
        Span<byte> buf = stackalloc byte[4];
        foreach (var r in mapped.EnumerateRunes())
        {
            if (r.IsBmp && s_charToByte.TryGetValue((char)r.Value, out byte b)) bytes.Add(b);
            else
            {
                int n = r.EncodeToUtf8(buf);
                for (int i = 0; i < n; i++) bytes.Add(buf[i]);
            }
        }
        return [.. bytes];
    }
}
