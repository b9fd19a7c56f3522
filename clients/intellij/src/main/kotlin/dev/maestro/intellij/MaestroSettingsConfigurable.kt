package dev.maestro.intellij

import com.intellij.openapi.options.Configurable
import com.intellij.openapi.project.ProjectManager
import com.intellij.openapi.ui.ComboBox
import com.intellij.ui.components.JBCheckBox
import com.intellij.ui.components.JBTextField
import com.intellij.util.ui.FormBuilder
import com.redhat.devtools.lsp4ij.LanguageServerManager
import javax.swing.JComponent

/** Settings | Tools | Maestro. Changing the launch command restarts the server in open projects. */
class MaestroSettingsConfigurable : Configurable {
    private val path = JBTextField()
    private val interpreter = JBTextField()
    private val coordinatorUrl = JBTextField()
    private val speculation = ComboBox(arrayOf("workspace", "on", "off"))
    private val autostart = JBCheckBox("Start the workspace daemon when none runs")
    private val codeLens = JBCheckBox("Code lenses (run, last result, impacted tests)")
    private val runOnSave = JBCheckBox("Run the impacted tests after a save (a newer save cancels the run)")

    override fun getDisplayName(): String = "Maestro"

    override fun createComponent(): JComponent = FormBuilder.createFormBuilder()
        .addLabeledComponent("maestro executable (empty: interpreter, else PATH):", path)
        .addLabeledComponent("Python interpreter:", interpreter)
        .addLabeledComponent("Coordinator URL:", coordinatorUrl)
        .addLabeledComponent("Speculative pre-runs (workspace: as configured there):", speculation)
        .addComponent(autostart)
        .addComponent(codeLens)
        .addComponent(runOnSave)
        .addComponentFillVertically(javax.swing.JPanel(), 0)
        .panel

    private fun current(): MaestroSettings.Options = MaestroSettings.Options(
        path = path.text,
        interpreter = interpreter.text,
        speculation = speculation.selectedItem as? String ?: "workspace",
        coordinatorUrl = coordinatorUrl.text,
        daemonAutostart = autostart.isSelected,
        codeLens = codeLens.isSelected,
        runOnSave = runOnSave.isSelected,
    )

    override fun isModified(): Boolean = current() != MaestroSettings.getInstance().state

    override fun apply() {
        MaestroSettings.getInstance().loadState(current())
        for (project in ProjectManager.getInstance().openProjects) {
            val manager = LanguageServerManager.getInstance(project)
            manager.stop(MaestroServer.ID)
            manager.start(MaestroServer.ID)
        }
    }

    override fun reset() {
        val s = MaestroSettings.getInstance().state
        path.text = s.path
        interpreter.text = s.interpreter
        coordinatorUrl.text = s.coordinatorUrl
        speculation.selectedItem = s.speculation
        autostart.isSelected = s.daemonAutostart
        codeLens.isSelected = s.codeLens
        runOnSave.isSelected = s.runOnSave
    }
}
