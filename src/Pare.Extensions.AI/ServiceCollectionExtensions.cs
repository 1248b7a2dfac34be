using Microsoft.Extensions.AI;
using Microsoft.Extensions.DependencyInjection;

namespace Pare.Extensions.AI;

public static class PareServiceCollectionExtensions
{
    /// <summary>
    /// Registers a singleton <see cref="IChatClient"/> over the model at <paramref name="modelPath"/> (loaded on first use).
    /// Returns the builder, so middleware can be added: <c>services.AddPareChatClient("m.gguf").UseLogging()</c>.
    /// </summary>
    public static ChatClientBuilder AddPareChatClient(this IServiceCollection services, string modelPath, PareChatClientOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentException.ThrowIfNullOrEmpty(modelPath);
        return services.AddChatClient(_ => new PareChatClient(modelPath, options));
    }
}
