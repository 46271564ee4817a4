package ai.k2j.plan;

import ai.k2j.loaders.ModelConfig;

import java.nio.file.Files;
import java.nio.file.Path;

/** Resolves {@code --model}: {@code preset:NAME}, a model directory (its config.json) or a config.json path. */
public final class ModelSource {
    private ModelSource() {
    }

    public static ModelShape resolve(String spec) {
        if (spec.startsWith("preset:")) {
            return Presets.get(spec.substring("preset:".length()));
        }
        Path p = Path.of(spec);
        Path config = Files.isDirectory(p) ? p.resolve("config.json") : p;
        if (!Files.exists(config)) {
            throw new PlanException(config + ": not found (--model takes a model directory, a config.json, or "
                    + "preset:NAME with NAME one of " + String.join(", ", Presets.all().keySet()) + ")");
        }
        Path named = Files.isDirectory(p) ? p : p.toAbsolutePath().getParent();
        String name = named == null || named.getFileName() == null ? config.toString() : named.getFileName().toString();
        if (MoeConfig.isMoe(config) && !MoeConfig.loaderReads(config)) {
            return MoeConfig.read(config, name);   // DeepSeek-V3 / Kimi K2, gpt-oss: not (yet) read by k2j's loader
        }
        return ModelShape.of(ModelConfig.read(config), name);
    }
}
