// Hl7.Fhir.Model.Task (the FHIR resource) clashes with System.Threading.Tasks.Task: in this project "Task" is
// always the .NET one; write Hl7.Fhir.Model.Task for the resource.
global using Task = System.Threading.Tasks.Task;
