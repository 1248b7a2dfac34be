using System.IO.MemoryMappedFiles;

namespace Pare.Formats;

/// <summary>
/// A whole file mapped read-only into memory: model weights are used in place, never copied, and only the pages that
/// are touched become resident. Shared by the GGUF and safetensors readers.
/// </summary>
public sealed unsafe class MappedFile : IDisposable
{
    readonly MemoryMappedFile _map;
    readonly MemoryMappedViewAccessor _view;
    bool _disposed;

    MappedFile(string path, long length)
    {
        Path = path;
        Length = length;
        _map = MemoryMappedFile.CreateFromFile(path, FileMode.Open, null, 0, MemoryMappedFileAccess.Read);
        try
        {
            _view = _map.CreateViewAccessor(0, 0, MemoryMappedFileAccess.Read);
        }
        catch
        {
            _map.Dispose();
            throw;
        }
        byte* p = null;
        _view.SafeMemoryMappedViewHandle.AcquirePointer(ref p);
        Base = p + _view.PointerOffset;
    }

    public string Path { get; }
    public long Length { get; }
    /// <summary>Address of the file's first byte; valid until Dispose.</summary>
    public byte* Base { get; }

    /// <summary>Maps <paramref name="path"/>; a missing, unreadable or shorter-than-<paramref name="minBytes"/> file is a one-line error.</summary>
    public static MappedFile Open(string path, long minBytes, string format)
    {
        if (!File.Exists(path)) throw new PareException($"model file not found: {path}");
        try
        {
            // A symbolic link's own FileInfo reports the link's size: measure the file it points to.
            var info = new FileInfo(path);
            if (info.LinkTarget != null) info = info.ResolveLinkTarget(returnFinalTarget: true) as FileInfo ?? info;
            long length = info.Length;
            if (length < minBytes) throw new InvalidModelException($"{path}: file is {length} bytes, too short to be {format}");
            return new MappedFile(path, length);
        }
        catch (IOException e) { throw new PareException($"{path}: cannot read: {e.Message}", e); }
        catch (UnauthorizedAccessException e) { throw new PareException($"{path}: cannot read: {e.Message}", e); }
    }

    public void ThrowIfDisposed() => ObjectDisposedException.ThrowIf(_disposed, this);

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _view.SafeMemoryMappedViewHandle.ReleasePointer();
        _view.Dispose();
        _map.Dispose();
    }
}
