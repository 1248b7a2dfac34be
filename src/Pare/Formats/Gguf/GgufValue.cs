namespace Pare.Formats.Gguf;

/// <summary>Metadata value types as numbered in the GGUF specification.</summary>
public enum GgufValueType : uint
{
    UInt8 = 0, Int8 = 1, UInt16 = 2, Int16 = 3, UInt32 = 4, Int32 = 5, Float32 = 6, Bool = 7,
    String = 8, Array = 9, UInt64 = 10, Int64 = 11, Float64 = 12,
}

/// <summary>
/// One metadata value. Scalars hold the matching CLR type (byte, sbyte, ushort, short, uint, int, float, bool,
/// string, ulong, long, double); arrays hold a typed CLR array (e.g. <c>string[]</c>, <c>float[]</c>, <c>int[]</c>)
/// with <see cref="ElementType"/> naming the GGUF element type.
/// </summary>
public sealed record GgufValue(GgufValueType Type, object Value, GgufValueType ElementType = GgufValueType.UInt8)
{
    public static GgufValue Of(string s) => new(GgufValueType.String, s);
    public static GgufValue Of(uint v) => new(GgufValueType.UInt32, v);
    public static GgufValue Of(int v) => new(GgufValueType.Int32, v);
    public static GgufValue Of(float v) => new(GgufValueType.Float32, v);
    public static GgufValue Of(bool v) => new(GgufValueType.Bool, v);
    public static GgufValue Of(ulong v) => new(GgufValueType.UInt64, v);
    public static GgufValue Of(string[] v) => new(GgufValueType.Array, v, GgufValueType.String);
    public static GgufValue Of(float[] v) => new(GgufValueType.Array, v, GgufValueType.Float32);
    public static GgufValue Of(int[] v) => new(GgufValueType.Array, v, GgufValueType.Int32);

    /// <summary>The value as a 64-bit integer, for any integer type (bool gives 0/1).</summary>
    public long AsInt64() => Value switch
    {
        byte b => b, sbyte sb => sb, ushort us => us, short s => s, uint u => u, int i => i,
        ulong ul => ul > long.MaxValue ? throw new InvalidModelException($"metadata value {ul} is too large") : (long)ul,
        long l => l, bool bo => bo ? 1 : 0,
        _ => throw new InvalidModelException($"metadata value of type {Type} is not an integer"),
    };

    public double AsDouble() => Value switch
    {
        float f => f, double d => d,
        _ => AsInt64(),
    };

    public override string ToString() => Value switch
    {
        string s => s,
        Array a => $"[{ElementType} x {a.Length}]",
        _ => Convert.ToString(Value, System.Globalization.CultureInfo.InvariantCulture) ?? "",
    };
}

/// <summary>A tensor's entry in the GGUF header. Dims[0] (ne0) is the contiguous dimension.</summary>
public sealed record GgufTensorInfo(string Name, long[] Dims, Tensors.GgmlType Type, long Offset, long ByteSize)
{
    public long ElementCount => Dims.Aggregate(1L, (a, b) => a * b);
    public string Shape => "[" + string.Join(", ", Dims) + "]";
}
