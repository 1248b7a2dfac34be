using System.IO.Compression;
using System.Text;

namespace Pare.Tests.Pruning;

/// <summary>
/// A minimal line-plot PNG writer (RGB, no dependencies): log-scale y, lines with square markers, a 3x5 pixel font for
/// tick labels and the legend. Enough for docs/pruning-ppl.png without a native plotting library.
/// </summary>
internal sealed class PngPlot(int width, int height)
{
    readonly byte[] _px = Enumerable.Repeat((byte)255, width * height * 3).ToArray();
    const int Left = 70, Right = 190, Top = 20, Bottom = 50;

    public sealed record Series(string Name, (byte R, byte G, byte B) Color, IReadOnlyList<(double X, double Y)> Points, bool Line = true);

    public void Draw(IReadOnlyList<Series> series, double xMin, double xMax, double yMin, double yMax, string xLabel, string yLabel)
    {
        double ly0 = Math.Log10(yMin), ly1 = Math.Log10(yMax);
        int W = width - Left - Right, H = height - Top - Bottom;
        int Px(double x) => Left + (int)Math.Round((x - xMin) / (xMax - xMin) * W);
        int Py(double y) => Top + H - (int)Math.Round((Math.Log10(Math.Clamp(y, yMin, yMax)) - ly0) / (ly1 - ly0) * H);
        // Grid and ticks.
        for (double x = xMin; x <= xMax + 1e-9; x += 0.1)
        {
            Line(Px(x), Top, Px(x), Top + H, (225, 225, 225));
            Text(Px(x) - 6, Top + H + 6, ((int)Math.Round(x * 100)).ToString(System.Globalization.CultureInfo.InvariantCulture), (0, 0, 0), 2);
        }
        foreach (double y in new[] { 1, 1.5, 2, 3, 5, 10, 20, 50, 100, 200, 500, 1000 }.Where(v => v >= yMin && v <= yMax))
        {
            Line(Left, Py(y), Left + W, Py(y), (225, 225, 225));
            Text(8, Py(y) - 5, y.ToString("0.#", System.Globalization.CultureInfo.InvariantCulture), (0, 0, 0), 2);
        }
        Line(Left, Top + H, Left + W, Top + H, (0, 0, 0));
        Line(Left, Top, Left, Top + H, (0, 0, 0));
        Text(Left + W / 2 - xLabel.Length * 4, height - 18, xLabel, (0, 0, 0), 2);
        Text(8, 4, yLabel, (0, 0, 0), 2);
        int legendY = Top + 10;
        foreach (var s in series)
        {
            for (int i = 0; i < s.Points.Count; i++)
            {
                int x = Px(s.Points[i].X), y = Py(s.Points[i].Y);
                Box(x, y, s.Line ? 2 : 4, s.Color);
                if (s.Line && i > 0) Line(Px(s.Points[i - 1].X), Py(s.Points[i - 1].Y), x, y, s.Color, 2);
            }
            Box(Left + W + 16, legendY + 5, s.Line ? 2 : 4, s.Color);
            if (s.Line) Line(Left + W + 8, legendY + 5, Left + W + 24, legendY + 5, s.Color, 2);
            Text(Left + W + 30, legendY, s.Name, (0, 0, 0), 2);
            legendY += 18;
        }
    }

    void Set(int x, int y, (byte R, byte G, byte B) c)
    {
        if ((uint)x >= (uint)width || (uint)y >= (uint)height) return;
        int i = (y * width + x) * 3;
        _px[i] = c.R; _px[i + 1] = c.G; _px[i + 2] = c.B;
    }

    void Box(int x, int y, int r, (byte, byte, byte) c)
    {
        for (int dy = -r; dy <= r; dy++) for (int dx = -r; dx <= r; dx++) Set(x + dx, y + dy, c);
    }

    void Line(int x0, int y0, int x1, int y1, (byte, byte, byte) c, int thick = 1)
    {
        int n = Math.Max(Math.Abs(x1 - x0), Math.Abs(y1 - y0)) + 1;
        for (int i = 0; i <= n; i++)
        {
            int x = x0 + (x1 - x0) * i / n, y = y0 + (y1 - y0) * i / n;
            for (int t = 0; t < thick; t++) { Set(x, y + t, c); Set(x + t, y, c); }
        }
    }

    // 3x5 glyphs, rows top to bottom, 3 bits each (MSB = left).
    static readonly Dictionary<char, int[]> Font = new()
    {
        ['0'] = [7, 5, 5, 5, 7], ['1'] = [2, 6, 2, 2, 7], ['2'] = [7, 1, 7, 4, 7], ['3'] = [7, 1, 7, 1, 7], ['4'] = [5, 5, 7, 1, 1],
        ['5'] = [7, 4, 7, 1, 7], ['6'] = [7, 4, 7, 5, 7], ['7'] = [7, 1, 1, 1, 1], ['8'] = [7, 5, 7, 5, 7], ['9'] = [7, 5, 7, 1, 7],
        ['.'] = [0, 0, 0, 0, 2], [':'] = [0, 2, 0, 2, 0], ['%'] = [5, 1, 2, 4, 5], ['-'] = [0, 0, 7, 0, 0], ['/'] = [1, 1, 2, 4, 4],
        ['('] = [1, 2, 2, 2, 1], [')'] = [4, 2, 2, 2, 4], [' '] = [0, 0, 0, 0, 0],
        ['A'] = [2, 5, 7, 5, 5], ['B'] = [6, 5, 6, 5, 6], ['C'] = [7, 4, 4, 4, 7], ['D'] = [6, 5, 5, 5, 6], ['E'] = [7, 4, 6, 4, 7],
        ['F'] = [7, 4, 6, 4, 4], ['G'] = [7, 4, 5, 5, 7], ['H'] = [5, 5, 7, 5, 5], ['I'] = [7, 2, 2, 2, 7], ['J'] = [1, 1, 1, 5, 7],
        ['K'] = [5, 5, 6, 5, 5], ['L'] = [4, 4, 4, 4, 7], ['M'] = [5, 7, 7, 5, 5], ['N'] = [6, 5, 5, 5, 5], ['O'] = [7, 5, 5, 5, 7],
        ['P'] = [7, 5, 7, 4, 4], ['Q'] = [7, 5, 5, 7, 1], ['R'] = [7, 5, 6, 5, 5], ['S'] = [7, 4, 7, 1, 7], ['T'] = [7, 2, 2, 2, 2],
        ['U'] = [5, 5, 5, 5, 7], ['V'] = [5, 5, 5, 5, 2], ['W'] = [5, 5, 7, 7, 5], ['X'] = [5, 5, 2, 5, 5], ['Y'] = [5, 5, 2, 2, 2],
        ['Z'] = [7, 1, 2, 4, 7],
    };

    void Text(int x, int y, string s, (byte, byte, byte) c, int scale)
    {
        foreach (char ch in s.ToUpperInvariant())
        {
            if (Font.TryGetValue(ch, out var g))
                for (int r = 0; r < 5; r++)
                    for (int b = 0; b < 3; b++)
                        if ((g[r] >> (2 - b) & 1) != 0)
                            for (int sy = 0; sy < scale; sy++) for (int sx = 0; sx < scale; sx++) Set(x + b * scale + sx, y + r * scale + sy, c);
            x += 4 * scale;
        }
    }

    public void Save(string path)
    {
        using var fs = File.Create(path);
        fs.Write([137, 80, 78, 71, 13, 10, 26, 10]);
        var ihdr = new byte[13];
        BE(ihdr, 0, (uint)width); BE(ihdr, 4, (uint)height);
        ihdr[8] = 8; ihdr[9] = 2; // 8-bit RGB
        Chunk(fs, "IHDR", ihdr);
        using var raw = new MemoryStream();
        using (var z = new ZLibStream(raw, CompressionLevel.Optimal, leaveOpen: true))
            for (int y = 0; y < height; y++) { z.WriteByte(0); z.Write(_px, y * width * 3, width * 3); }
        Chunk(fs, "IDAT", raw.ToArray());
        Chunk(fs, "IEND", []);
    }

    static void BE(byte[] b, int at, uint v) { b[at] = (byte)(v >> 24); b[at + 1] = (byte)(v >> 16); b[at + 2] = (byte)(v >> 8); b[at + 3] = (byte)v; }

    static void Chunk(Stream s, string type, byte[] data)
    {
        var len = new byte[4]; BE(len, 0, (uint)data.Length); s.Write(len);
        var td = Encoding.ASCII.GetBytes(type).Concat(data).ToArray();
        s.Write(td);
        var crc = new byte[4]; BE(crc, 0, Crc32(td)); s.Write(crc);
    }

    static uint Crc32(byte[] d)
    {
        uint c = 0xFFFFFFFF;
        foreach (byte b in d)
        {
            c ^= b;
            for (int k = 0; k < 8; k++) c = (c & 1) != 0 ? 0xEDB88320 ^ (c >> 1) : c >> 1;
        }
        return ~c;
    }
}
