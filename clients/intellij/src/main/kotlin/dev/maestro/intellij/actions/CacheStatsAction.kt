package dev.maestro.intellij.actions

import com.intellij.openapi.actionSystem.AnActionEvent
import dev.maestro.intellij.MaestroServer
import dev.maestro.intellij.WorkspaceParams

/** `maestro/cacheStats`: hits, misses, hit rate and time saved, as a notification. */
class CacheStatsAction : ProjectAction() {
    override fun actionPerformed(e: AnActionEvent) {
        val project = e.project ?: return
        MaestroServer.api(project)
            .thenCompose { server -> server?.cacheStats(WorkspaceParams()) ?: error("the Maestro language server is not running") }
            .whenComplete { stats, error ->
                if (error != null) {
                    MaestroServer.notify(project, "Maestro: ${error.cause?.message ?: error.message}", warning = true)
                    return@whenComplete
                }
                val hits = stats.hits ?: 0
                val misses = stats.misses ?: 0
                val rate = stats.hitRate
                val saved = stats.wallSecondsSaved ?: 0.0
                val pct = rate?.let { " (${Math.round(it * 100)}% hits)" } ?: ""
                MaestroServer.notify(project, "Maestro cache: $hits hits, $misses misses$pct, ${"%.1f".format(saved)} s saved")
            }
    }
}
