using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Pare.Training.Kernels;

/// <summary>Which part of a square product a causal (lower-triangular) operand lets a row block skip.</summary>
public enum Causal
{
    /// <summary>Full product.</summary>
    None,
    /// <summary>Row m needs columns n ≤ m only (scores S = Q·Kᵀ): a row block computes columns below its last row, rounded up to 16.</summary>
    ColumnsToRow,
    /// <summary>Row m sums over k ≤ m only (P·V, dS·K): A is zero beyond the diagonal.</summary>
    KToRow,
    /// <summary>Row m sums over k ≥ m only (Pᵀ·dO, dSᵀ·Q): A read transposed is zero above the diagonal.</summary>
    KFromRow,
}

/// <summary>
/// A general single-threaded F32 product with register tiling, for the products inside one attention job and for the
/// linear layers' gradients: C[m, n] (=|+=) Σ_k A(m, k) · B[k, n], where A(m, k) = A[m · aRow + k · aCol] (so A can be read
/// as stored or transposed) and B, C are row-major with leading dimensions ldb, ldc. Tiles of 4 rows × 64 (or 32, 16) columns
/// live in registers while k streams through; columns left over (&lt; 16) are done in scalar code. Each element is summed in
/// k order by one thread: reproducible.
/// </summary>
public static unsafe class Gemm
{
    public const int TileRows = 4;

    /// <summary>Computes rows [m0, m1) of C.</summary>
    public static void Rows(int m0, int m1, int n, int k, float* a, long aRow, long aCol, float* b, long ldb, float* c, long ldc,
        bool accumulate, Causal causal = Causal.None)
    {
        for (int m = m0; m < m1; m += TileRows)
        {
            int mr = Math.Min(TileRows, m1 - m);
            int nEnd = causal == Causal.ColumnsToRow ? Math.Min(n, (m + TileRows + 15) / 16 * 16) : n;
            int kBegin = causal == Causal.KFromRow ? m : 0;
            int kEnd = causal == Causal.KToRow ? Math.Min(k, m + TileRows) : k;
            // Rows past the end repeat the last row (computed, not stored), so the tiles need no branches.
            float* a0 = a + m * aRow, a1 = a + (m + Math.Min(1, mr - 1)) * aRow, a2 = a + (m + Math.Min(2, mr - 1)) * aRow, a3 = a + (m + Math.Min(3, mr - 1)) * aRow;
            int col = 0;
            if (Vector512.IsHardwareAccelerated)
            {
                for (; col + 64 <= nEnd; col += 64)
                    Tile4x64(a0, a1, a2, a3, aCol, kBegin, kEnd, b + col, ldb, c + m * ldc + col, ldc, mr, accumulate);
                for (; col + 32 <= nEnd; col += 32)
                    Tile4x32(a0, a1, a2, a3, aCol, kBegin, kEnd, b + col, ldb, c + m * ldc + col, ldc, mr, accumulate);
                for (; col + 16 <= nEnd; col += 16)
                    Tile4x16(a0, a1, a2, a3, aCol, kBegin, kEnd, b + col, ldb, c + m * ldc + col, ldc, mr, accumulate);
            }
            for (; col < nEnd; col++)
                for (int r = 0; r < mr; r++)
                {
                    float* ar = a + (m + r) * aRow;
                    float s = 0;
                    for (int i = kBegin; i < kEnd; i++) s += ar[i * aCol] * b[i * ldb + col];
                    float* dst = c + (m + r) * ldc + col;
                    *dst = accumulate ? *dst + s : s;
                }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void Tile4x64(float* a0, float* a1, float* a2, float* a3, long aCol, int k0, int k1, float* b, long ldb, float* c, long ldc, int rows, bool accumulate)
    {
        Vector512<float> c00 = default, c01 = default, c02 = default, c03 = default;
        Vector512<float> c10 = default, c11 = default, c12 = default, c13 = default;
        Vector512<float> c20 = default, c21 = default, c22 = default, c23 = default;
        Vector512<float> c30 = default, c31 = default, c32 = default, c33 = default;
        for (int i = k0; i < k1; i++)
        {
            float* bi = b + i * ldb;
            var b0 = Vector512.Load(bi); var b1 = Vector512.Load(bi + 16); var b2 = Vector512.Load(bi + 32); var b3 = Vector512.Load(bi + 48);
            long ai = i * aCol;
            var a = Vector512.Create(a0[ai]);
            c00 = Vector512.FusedMultiplyAdd(a, b0, c00); c01 = Vector512.FusedMultiplyAdd(a, b1, c01);
            c02 = Vector512.FusedMultiplyAdd(a, b2, c02); c03 = Vector512.FusedMultiplyAdd(a, b3, c03);
            a = Vector512.Create(a1[ai]);
            c10 = Vector512.FusedMultiplyAdd(a, b0, c10); c11 = Vector512.FusedMultiplyAdd(a, b1, c11);
            c12 = Vector512.FusedMultiplyAdd(a, b2, c12); c13 = Vector512.FusedMultiplyAdd(a, b3, c13);
            a = Vector512.Create(a2[ai]);
            c20 = Vector512.FusedMultiplyAdd(a, b0, c20); c21 = Vector512.FusedMultiplyAdd(a, b1, c21);
            c22 = Vector512.FusedMultiplyAdd(a, b2, c22); c23 = Vector512.FusedMultiplyAdd(a, b3, c23);
            a = Vector512.Create(a3[ai]);
            c30 = Vector512.FusedMultiplyAdd(a, b0, c30); c31 = Vector512.FusedMultiplyAdd(a, b1, c31);
            c32 = Vector512.FusedMultiplyAdd(a, b2, c32); c33 = Vector512.FusedMultiplyAdd(a, b3, c33);
        }
        Store4(c, c00, c01, c02, c03, accumulate);
        if (rows > 1) Store4(c + ldc, c10, c11, c12, c13, accumulate);
        if (rows > 2) Store4(c + 2 * ldc, c20, c21, c22, c23, accumulate);
        if (rows > 3) Store4(c + 3 * ldc, c30, c31, c32, c33, accumulate);
    }

    /// <summary>4 × 32: the head-width products of attention (P·V, dS·K, ...): each broadcast feeds two FMAs.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void Tile4x32(float* a0, float* a1, float* a2, float* a3, long aCol, int k0, int k1, float* b, long ldb, float* c, long ldc, int rows, bool accumulate)
    {
        Vector512<float> c00 = default, c01 = default, c10 = default, c11 = default;
        Vector512<float> c20 = default, c21 = default, c30 = default, c31 = default;
        for (int i = k0; i < k1; i++)
        {
            float* bi = b + i * ldb;
            var b0 = Vector512.Load(bi); var b1 = Vector512.Load(bi + 16);
            long ai = i * aCol;
            var a = Vector512.Create(a0[ai]);
            c00 = Vector512.FusedMultiplyAdd(a, b0, c00); c01 = Vector512.FusedMultiplyAdd(a, b1, c01);
            a = Vector512.Create(a1[ai]);
            c10 = Vector512.FusedMultiplyAdd(a, b0, c10); c11 = Vector512.FusedMultiplyAdd(a, b1, c11);
            a = Vector512.Create(a2[ai]);
            c20 = Vector512.FusedMultiplyAdd(a, b0, c20); c21 = Vector512.FusedMultiplyAdd(a, b1, c21);
            a = Vector512.Create(a3[ai]);
            c30 = Vector512.FusedMultiplyAdd(a, b0, c30); c31 = Vector512.FusedMultiplyAdd(a, b1, c31);
        }
        Store1(c, c00, accumulate); Store1(c + 16, c01, accumulate);
        if (rows > 1) { Store1(c + ldc, c10, accumulate); Store1(c + ldc + 16, c11, accumulate); }
        if (rows > 2) { Store1(c + 2 * ldc, c20, accumulate); Store1(c + 2 * ldc + 16, c21, accumulate); }
        if (rows > 3) { Store1(c + 3 * ldc, c30, accumulate); Store1(c + 3 * ldc + 16, c31, accumulate); }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void Tile4x16(float* a0, float* a1, float* a2, float* a3, long aCol, int k0, int k1, float* b, long ldb, float* c, long ldc, int rows, bool accumulate)
    {
        Vector512<float> c0 = default, c1 = default, c2 = default, c3 = default;
        for (int i = k0; i < k1; i++)
        {
            var bv = Vector512.Load(b + i * ldb);
            long ai = i * aCol;
            c0 = Vector512.FusedMultiplyAdd(Vector512.Create(a0[ai]), bv, c0);
            c1 = Vector512.FusedMultiplyAdd(Vector512.Create(a1[ai]), bv, c1);
            c2 = Vector512.FusedMultiplyAdd(Vector512.Create(a2[ai]), bv, c2);
            c3 = Vector512.FusedMultiplyAdd(Vector512.Create(a3[ai]), bv, c3);
        }
        Store1(c, c0, accumulate);
        if (rows > 1) Store1(c + ldc, c1, accumulate);
        if (rows > 2) Store1(c + 2 * ldc, c2, accumulate);
        if (rows > 3) Store1(c + 3 * ldc, c3, accumulate);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void Store4(float* c, Vector512<float> v0, Vector512<float> v1, Vector512<float> v2, Vector512<float> v3, bool accumulate)
    {
        if (accumulate) { v0 += Vector512.Load(c); v1 += Vector512.Load(c + 16); v2 += Vector512.Load(c + 32); v3 += Vector512.Load(c + 48); }
        v0.Store(c); v1.Store(c + 16); v2.Store(c + 32); v3.Store(c + 48);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void Store1(float* c, Vector512<float> v, bool accumulate)
    {
        if (accumulate) v += Vector512.Load(c);
        v.Store(c);
    }
}
