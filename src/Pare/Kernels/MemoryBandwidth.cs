using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace Pare.Kernels;

/// <summary>
/// Measures the machine's memory read bandwidth the way a good decode kernel reads weights: each thread walks its
/// share of a large buffer as several streams at once (one stream per thread leaves the prefetchers idle).
/// The result is the roofline for decode: tokens/s cannot exceed bandwidth / weight bytes per token.
/// </summary>
public static unsafe class MemoryBandwidth
{
    /// <summary>Best of <paramref name="repeats"/> passes over a buffer of <paramref name="bytes"/>, in GB/s (1e9 bytes).</summary>
    public static double Measure(int threads, long bytes = 1L << 30, int streamsPerThread = 4, int repeats = 5)
    {
        if (threads < 1) throw new ArgumentOutOfRangeException(nameof(threads));
        long chunk = bytes / (threads * streamsPerThread) / 64 * 64;
        bytes = chunk * threads * streamsPerThread;
        byte* buf = (byte*)NativeMemory.AlignedAlloc((nuint)bytes, 64);
        try
        {
            // Distinct, non-zero contents so no page is shared or compressed.
            for (long i = 0; i < bytes; i += 8) *(ulong*)(buf + i) = (ulong)i * 0x9E3779B97F4A7C15UL;
            double best = 0;
            var sink = new float[threads];
            for (int rep = 0; rep < repeats; rep++)
            {
                var sw = Stopwatch.StartNew();
                Parallel.For(0, threads, new ParallelOptions { MaxDegreeOfParallelism = threads }, t =>
                {
                    byte* start = buf + (long)t * streamsPerThread * chunk;
                    sink[t] = ReadStreams(start, chunk, streamsPerThread);
                });
                best = Math.Max(best, bytes / sw.Elapsed.TotalSeconds / 1e9);
            }
            GC.KeepAlive(sink);
            return best;
        }
        finally
        {
            NativeMemory.AlignedFree(buf);
        }
    }

    // Fully optimized from the first call: tiered JIT would time its own warm-up.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static float ReadStreams(byte* start, long chunk, int streams)
    {
        var acc0 = Vector512<float>.Zero;
        var acc1 = Vector512<float>.Zero;
        var acc2 = Vector512<float>.Zero;
        var acc3 = Vector512<float>.Zero;
        if (streams == 4)
        {
            byte* p0 = start, p1 = start + chunk, p2 = start + 2 * chunk, p3 = start + 3 * chunk;
            for (long i = 0; i < chunk; i += 64)
            {
                acc0 += Vector512.Load((float*)(p0 + i));
                acc1 += Vector512.Load((float*)(p1 + i));
                acc2 += Vector512.Load((float*)(p2 + i));
                acc3 += Vector512.Load((float*)(p3 + i));
            }
        }
        else
        {
            for (int s = 0; s < streams; s++)
                for (long i = 0; i < chunk; i += 64) acc0 += Vector512.Load((float*)(start + s * chunk + i));
        }
        return Vector512.Sum(acc0 + acc1 + acc2 + acc3);
    }
}
